"""The services a :class:`~coldrec.workspace.Workspace` wires together, one concern each (see the
README's architecture section): ``state`` (the one cache), ``models``, ``catalog``, ``imports``,
``vectors``, ``predictor``, ``labels`` and ``audience``."""
