"""The embedding measures beside cosine: top-5 neighbour agreement and the rank correlation of pairwise
similarities, against brute-force definitions; and the measure a model names decides what optimize keeps and what
fastest_within counts as loss."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.evaluation.quality import measure, neighbour_agreement, similarity_rank_correlation
from app.schema.manifest import EvaluationSpec


def _neighbours(embeddings: np.ndarray, k: int) -> list[set[int]]:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    found = []
    for i in range(len(unit)):
        scored = sorted((float(unit[i] @ unit[j]), j) for j in range(len(unit)) if j != i)
        found.append({j for _, j in scored[-k:]})
    return found


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    def pairs(embeddings: np.ndarray) -> list[float]:
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        return [float(unit[i] @ unit[j]) for i, j in itertools.combinations(range(len(unit)), 2)]

    def ranks(values: list[float]) -> np.ndarray:
        order = sorted(range(len(values)), key=values.__getitem__)
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        return ranked

    return float(np.corrcoef(ranks(pairs(a)), ranks(pairs(b)))[0, 1])


@settings(max_examples=60, deadline=None)
@given(samples=st.integers(7, 40), dimensions=st.integers(2, 16), noise=st.floats(0.0, 2.0), seed=st.integers(0, 999))
def test_measures_match_their_brute_force_definitions(samples, dimensions, noise, seed):
    generator = np.random.default_rng(seed)
    reference = generator.normal(size=(samples, dimensions))
    output = reference + noise * generator.normal(size=(samples, dimensions))
    expected = np.mean([len(a & b) / 5 for a, b in zip(_neighbours(output, 5), _neighbours(reference, 5), strict=True)])
    assert neighbour_agreement(output, reference, 5) == pytest.approx(expected)
    assert similarity_rank_correlation(output, reference) == pytest.approx(_spearman(output, reference))


def test_identical_embeddings_agree_fully_and_shuffled_ones_do_not():
    generator = np.random.default_rng(0)
    reference = generator.normal(size=(60, 8))
    assert neighbour_agreement(reference, reference, 5) == 1.0
    assert similarity_rank_correlation(reference * 3.0, reference) == pytest.approx(1.0)
    shuffled = reference[generator.permutation(60)]
    assert (neighbour_agreement(shuffled, reference, 5) or 0.0) < 0.5
    assert abs(similarity_rank_correlation(shuffled, reference) or 0.0) < 0.3


def test_too_few_samples_give_no_figure():
    tiny = np.eye(3)
    assert neighbour_agreement(tiny, tiny, 5) is None
    assert similarity_rank_correlation(tiny[:2], tiny[:2]) is None


def test_the_named_measure_decides_what_is_kept_and_what_counts_as_loss():
    generator = np.random.default_rng(1)
    reference = generator.normal(size=(80, 16))
    # Every sample keeps a cosine above 0.95, but close neighbours swap places: searches change.
    output = reference + 0.1 * generator.normal(size=(80, 16))
    by_cosine = EvaluationSpec(data="x.npz", task="embedding", output="e", min_cosine=0.9)
    by_retrieval = EvaluationSpec(data="x.npz", task="embedding", output="e", measure="retrieval", min_retrieval=0.9)
    quality = measure(by_cosine, output, reference, None)
    perfect = measure(by_cosine, reference, reference, None)
    assert quality.cosine_min is not None
    assert quality.cosine_min > 0.9
    assert quality.retrieval_top5 is not None
    assert quality.retrieval_top5 < 0.9
    assert quality.passes(by_cosine)
    assert not quality.passes(by_retrieval)
    assert quality.loss_against(perfect, by_retrieval) == pytest.approx(1 - quality.retrieval_top5)
    assert quality.loss_against(perfect, by_cosine) == pytest.approx(1 - (quality.cosine_mean or 0))
