"""Encoder: loading, pooling, normalisation, order, caching, errors."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from coldrec.encoder import ModelLoadError, _read_pooling, embed_texts, load_encoder, pick_device, text_hash


def test_dimension_comes_from_the_model_config(tiny_encoder):
    assert tiny_encoder.dim == 32
    vectors = tiny_encoder.encode(["steel pan", "dog food"])
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32


def test_vectors_are_unit_length_and_deterministic(tiny_encoder):
    texts = ["steel frying pan", "a", "wool socks and leather boot " * 20]
    first = tiny_encoder.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tiny_encoder.encode(texts), first, atol=1e-6)


def test_length_sorted_batches_return_vectors_in_input_order(tiny_encoder):
    texts = ["dog food pack with rice and chicken for the big dog", "pan", "cat toy ball set", "wok"]
    together = tiny_encoder.encode(texts)
    alone = np.vstack([tiny_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_progress_callback_counts_up_to_total(tiny_encoder):
    seen = []
    tiny_encoder.encode([f"pan {i}" for i in range(10)], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10, 10)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_concurrent_threads_get_the_same_vectors(tiny_encoder):
    texts = [f"steel pot set {i}" for i in range(12)]
    expected = tiny_encoder.encode(texts)
    results = [None] * 4

    def work(slot):
        results[slot] = tiny_encoder.encode(texts)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_pooling_is_read_from_a_sentence_transformers_folder(tmp_path):
    assert _read_pooling(None) == "mean"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert _read_pooling(tmp_path) == "cls"


def test_cls_pooling_model_gives_different_vectors(tiny_model_dir, tmp_path, tiny_encoder):
    folder = tmp_path / "cls-model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    cls_encoder = load_encoder(str(folder), device="cpu")
    assert cls_encoder.pooling == "cls"
    assert not np.allclose(cls_encoder.encode(["steel pan"]), tiny_encoder.encode(["steel pan"]))


def test_unloadable_model_error_names_the_model(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="not-a-model"):
        load_encoder(str(empty), device="cpu")
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        load_encoder("no-such-org/no-such-model", device="cpu")


@pytest.mark.parametrize("model", ["/nonexistent", "./no/such/folder", "~/no-such-model-folder"])
def test_a_missing_model_folder_is_named_as_a_folder(model):
    with pytest.raises(ModelLoadError, match=r"^model folder not found: "):
        load_encoder(model, device="cpu")


def test_device_override_is_respected_and_unavailable_cuda_is_refused():
    import torch

    assert pick_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert pick_device() in {"mps", "cpu"}
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            pick_device("cuda")


class CountingCache:
    def __init__(self):
        self.data = {}

    def get_embeddings(self, model, hashes):
        return {h: self.data[(model, h)] for h in hashes if (model, h) in self.data}

    def put_embeddings(self, model, hashes, vectors):
        for h, v in zip(hashes, vectors):
            self.data[(model, h)] = v


class CountingEncoder:
    def __init__(self, inner):
        self.inner, self.name, self.dim, self.device, self.calls = inner, inner.name, inner.dim, inner.device, []

    def encode(self, texts, progress=None):
        self.calls.append(list(texts))
        return self.inner.encode(texts, progress)


def test_embed_texts_never_recomputes_a_cached_or_repeated_text(tiny_encoder):
    enc, cache = CountingEncoder(tiny_encoder), CountingCache()
    first = embed_texts(enc, ["pan", "wok", "pan"], cache=cache)
    assert enc.calls == [["pan", "wok"]]
    again = embed_texts(enc, ["wok", "pan", "boot"], cache=cache)
    assert enc.calls[-1] == ["boot"]
    np.testing.assert_allclose(again[1], first[0])
    assert (tiny_encoder.name, text_hash("boot")) in cache.data


def test_text_hash_distinguishes_exact_text():
    assert text_hash("Pan") != text_hash("pan") != text_hash("pan ")
    assert len(text_hash("抹茶")) == 64


def test_a_hub_id_in_the_local_hugging_face_cache_loads_offline(tiny_model_dir, tmp_path):
    import os
    import subprocess
    import sys

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tiny-org--tiny-bert"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"import sys; sys.path.insert(0, {project!r}); from coldrec.encoder import load_encoder; "
        "e = load_encoder('tiny-org/tiny-bert', device='cpu'); print(e.name, e.dim)"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["tiny-org/tiny-bert", "32"]


def test_onnx_int8_backend_gives_vectors_close_to_torch_and_is_exported_once(tmp_path, tiny_model_dir, tiny_encoder):
    pytest.importorskip("onnxruntime")
    texts = ["steel frying pan", "dog food pack with rice", "a", "wool socks and leather boot " * 10]
    int8 = load_encoder(str(tiny_model_dir), backend="onnx-int8", batch_size=4, onnx_cache=tmp_path)
    assert int8.backend == "onnx-int8" and int8.device == "cpu" and int8.dim == tiny_encoder.dim
    # Its own cache name: int8 vectors are close to the fp32 ones, not equal.
    assert int8.name == f"{tiny_encoder.name}+onnx-int8"
    vectors, reference = int8.encode(texts), tiny_encoder.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() > 0.98 and not np.allclose(vectors, reference, atol=1e-6)
    np.testing.assert_allclose(int8.encode(texts[::-1]), vectors[::-1], atol=1e-5)  # order and padding
    exported = list(tmp_path.rglob("*.onnx"))
    assert len(exported) == 1 and not list(tmp_path.glob(".export-*"))
    stamp = exported[0].stat().st_mtime_ns
    again = load_encoder(str(tiny_model_dir), backend="onnx-int8", onnx_cache=tmp_path)
    assert list(tmp_path.rglob("*.onnx")) == exported and exported[0].stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.encode(texts), vectors, atol=1e-6)


def test_backend_setting_is_checked(tiny_model_dir, monkeypatch, tmp_path):
    from coldrec.errors import ConfigError

    monkeypatch.setenv("COLDREC_BACKEND", "tensorrt")
    with pytest.raises(ConfigError, match="COLDREC_BACKEND"):
        load_encoder(str(tiny_model_dir))
    with pytest.raises(ConfigError, match="CPU only"):
        load_encoder(str(tiny_model_dir), device="cuda", backend="onnx-int8", onnx_cache=tmp_path)
    monkeypatch.setenv("COLDREC_BACKEND", "torch")
    assert load_encoder(str(tiny_model_dir), device="cpu").backend == "torch"
