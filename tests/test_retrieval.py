"""k-NN search: faiss against NumPy brute force, chunked memory-mapped float16 search, IVF and HNSW indexes, in
eval and in predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import IndexNet, on_cpu, unit_rows, write_index_image, write_test_set

from cosplace_xs.config import ApproximateConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.descriptor_store import ModelSignature, build_store, weights_digest
from cosplace_xs.evaluation.retrieval import approximate_knn, build_index, factory_string, knn
from cosplace_xs.predict import predict


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    squared = ((queries[:, None, :].astype(np.float64) - database[None, :, :]) ** 2).sum(-1)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(squared, order, axis=1), order


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(7)
    return _unit(generator.standard_normal((200, 16))), _unit(generator.standard_normal((15, 16)))


def test_knn_equals_numpy_brute_force(vectors) -> None:
    database, queries = vectors
    distances, indices = knn(database, queries, 10)
    expected_distances, expected_indices = _brute_force(database, queries, 10)
    assert indices.dtype == np.int64 and indices.shape == (15, 10)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-5)


def test_hand_computed_neighbours_and_k_capped_at_the_database_size() -> None:
    database = np.array([[0, 0], [3, 4], [1, 0]], dtype=np.float32)
    distances, indices = knn(database, np.array([[0.9, 0.0]], dtype=np.float32), 20)
    assert indices.tolist() == [[2, 0, 1]]  # 0.1, 0.9, then sqrt(2.1^2 + 4^2) away
    np.testing.assert_allclose(distances, [[0.01, 0.81, 2.1**2 + 16]], rtol=1e-5)


def test_chunked_search_of_a_float16_memory_map_equals_in_memory_search(vectors, tmp_path: Path) -> None:
    database, queries = vectors
    path = tmp_path / "db.npy"
    np.save(path, database.astype(np.float16))
    mapped = np.load(path, mmap_mode="r")
    distances, indices = knn(mapped, queries, 7, chunk_rows=33)  # 7 chunks, the last one of 2 rows
    expected_distances, expected_indices = knn(mapped.astype(np.float32), queries, 7)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-6)


def test_ivf_visiting_every_cell_is_exact(vectors) -> None:
    database, queries = vectors
    options = ApproximateConfig("ivf", nlist=4, nprobe=4, train_size=150)
    _, indices = approximate_knn(database, queries, 5, options)
    np.testing.assert_array_equal(indices, knn(database, queries, 5)[1])


def test_ivfpq_finds_near_duplicates_of_well_separated_points() -> None:
    generator = np.random.default_rng(3)
    database = _unit(generator.standard_normal((300, 16)))
    queries = _unit(database[::10] + 0.01 * generator.standard_normal((30, 16)).astype(np.float32))
    options = ApproximateConfig("ivfpq", nlist=2, nprobe=2, pq_m=4, pq_nbits=4)  # 16 codes: fast to train
    _, indices = approximate_knn(database, queries, 3, options)
    assert indices[:, 0].tolist() == list(range(0, 300, 10))


def test_hnsw_with_a_wide_search_is_exact_on_a_small_database(vectors) -> None:
    database, queries = vectors
    options = ApproximateConfig("hnsw", hnsw_m=8, ef_construction=200, ef_search=200)  # every node is visited
    distances, indices = approximate_knn(database, queries, 5, options)
    expected_distances, expected_indices = knn(database, queries, 5)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-5)


def test_hnsw_is_built_from_chunks_with_the_options_given(vectors) -> None:
    database, _ = vectors
    index = build_index(database, ApproximateConfig("hnsw", hnsw_m=6, ef_construction=30, ef_search=9),
                        chunk_rows=64)  # 4 chunks, the last one of 8 rows
    assert (index.ntotal, index.hnsw.efConstruction, index.hnsw.efSearch) == (200, 30, 9)
    assert index.hnsw.nb_neighbors(1) == 6  # M links per node above the ground layer, 2 M on it
    assert index.hnsw.nb_neighbors(0) == 12


def test_ivfpq_skips_polysemous_training(vectors) -> None:
    """faiss's IVF-PQ trains polysemous codes by default (minutes of annealing for 8-bit codes), which a search
    without a Hamming threshold never reads."""
    database, _ = vectors
    index = build_index(database, ApproximateConfig("ivfpq", nlist=2, pq_m=4, pq_nbits=4))
    assert not index.do_polysemous_training and index.polysemous_ht == 0


def test_approximate_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--approximate=hnsw2 is out of range: one of ivf, ivfpq, hnsw"):
        ApproximateConfig("hnsw2")
    with pytest.raises(ConfigError, match="--hnsw-m=1 is out of range: >= 2"):
        ApproximateConfig("hnsw", hnsw_m=1)
    with pytest.raises(ConfigError, match="--ef-search=0 is out of range: >= 1"):
        ApproximateConfig("hnsw", ef_search=0)
    with pytest.raises(ConfigError, match="--nprobe=0 is out of range: >= 1"):
        ApproximateConfig("ivf", nprobe=0)
    with pytest.raises(ConfigError, match="--pq-m=5 must divide the descriptor size 16"):
        factory_string(ApproximateConfig("ivfpq", pq_m=5), 1000, 16)
    with pytest.raises(ConfigError, match="--pq-nbits=8 needs at least 256"):
        factory_string(ApproximateConfig("ivfpq", pq_m=4), 100, 16)
    assert factory_string(ApproximateConfig("ivf", nlist=1024), 390, 16) == "IVF10,Flat"  # 39 points per cell


def test_predict_searches_through_an_approximate_index(tmp_path: Path) -> None:
    """HNSW finds the exact matches of a small database; IVF probing 1 of 2 cells leaves out what the other holds."""
    street = write_test_set(tmp_path / "street", [(30.0 * i, 0.0) for i in range(80)], [(0.0, 1.0)])
    model = IndexNet(unit_rows(np.random.default_rng(4), 82))
    database = build_store(model, street / "database", sorted((street / "database").iterdir()),
                           ModelSignature("index", 8, weights_digest(model), 16), on_cpu(16, 8))
    photo = write_index_image(tmp_path / "photo.png", 81)
    (exact,) = predict(model, [photo], database, 5, on_cpu(16, 8))
    (graph,) = predict(model, [photo], database, 5, on_cpu(16, 8), approximate=ApproximateConfig("hnsw"))
    assert [m.path for m in graph.matches] == [m.path for m in exact.matches]
    (cell,) = predict(model, [photo], database, 80, on_cpu(16, 8),
                      approximate=ApproximateConfig("ivf", nlist=2, nprobe=1))  # 80 / 39: 2 cells
    assert 0 < len(cell.matches) < 80 and cell.matches[0].path == exact.matches[0].path
