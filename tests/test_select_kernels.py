"""PASER selection kernels without models: budget arithmetic (largest remainder, redistribution), ranking by
efficiency, the concept consistency filter on crafted contradictions, and S2RIC on a sparse graph of known blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sift.selection.config import SelectionConfig, budget_count
from sift.selection.kernels.budget import allocate, efficiency, largest_remainder, rank_within
from sift.selection.kernels.concepts import ConceptGraph, keyphrases, stop_words


def test_largest_remainder_sums_exactly_and_gives_extras_to_largest_remainders() -> None:
    # shares 10 * (0.5, 0.3, 0.2) / 1.0 of 7: 3.5, 2.1, 1.4 -> floors 3, 2, 1 (6), one extra to 3.5's remainder
    assert largest_remainder(7, np.array([0.5, 0.3, 0.2])).tolist() == [4, 2, 1]
    # equal remainders: the lower index first
    assert largest_remainder(2, np.array([1.0, 1.0, 1.0])).tolist() == [1, 1, 0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.random(rng.integers(1, 12))
        total = int(rng.integers(0, 500))
        got = largest_remainder(total, w)
        assert got.sum() == total
        assert np.all(np.abs(got - total * w / w.sum()) < 1.0)  # each within one of its exact share


def test_allocation_follows_degradation_and_redistributes_what_a_cluster_cannot_use() -> None:
    # B = 10 by CDS (0.6, 0.3, 0.1): 6, 3, 1 when every cluster has room
    assert allocate(10, np.array([0.6, 0.3, 0.1]), np.array([100, 100, 100])).tolist() == [6, 3, 1]
    # the first cluster holds 2: its other 4 go to the rest by their CDS (3:1) -> 3 + 3, 1 + 1
    assert allocate(10, np.array([0.6, 0.3, 0.1]), np.array([2, 100, 100])).tolist() == [2, 6, 2]
    # a budget beyond every cluster's room fills them all
    assert allocate(50, np.array([0.6, 0.3, 0.1]), np.array([2, 3, 4])).tolist() == [2, 3, 4]
    # no degradation anywhere: shared by size
    assert allocate(6, np.zeros(3), np.array([10, 20, 30])).tolist() == [1, 2, 3]
    # zero-degradation clusters get nothing while others have room
    assert allocate(5, np.array([0.0, 1.0]), np.array([10, 10])).tolist() == [0, 5]
    with pytest.raises(ValueError):
        allocate(5, np.array([np.nan, 1.0]), np.array([10, 10]))


def test_budget_count_fraction_or_number() -> None:
    assert budget_count(0.2, 240) == 48
    assert budget_count(0.001, 100) == 1
    assert budget_count(30, 240) == 30
    assert SelectionConfig(budget=30).budget == 30
    with pytest.raises(ValueError):
        SelectionConfig(budget=2.5)
    with pytest.raises(ValueError):
        SelectionConfig(clusters="many")
    assert SelectionConfig(clusters="7").clusters == 7


def test_efficiency_and_ranking_within_clusters() -> None:
    jsd = np.array([0.2, 0.2, 0.1, 0.4, 0.0])
    tokens = np.array([100, 10, 10, 1000, 50])
    eff = efficiency(jsd, tokens)
    assert eff[0] == pytest.approx(0.2 / math.log(100) ** 2)
    assert eff[1] > eff[0]  # the same degradation in fewer tokens ranks higher
    cluster = np.array([1, 0, 0, 1, 0])
    order, rank = rank_within(cluster, eff)
    # cluster 0: rows 1 (0.2/log10²), 2 (0.1/log10²), 4 (0); cluster 1: rows 3 (0.4/log1000²=0.0084) vs 0 (0.0094)
    assert order.tolist() == [1, 2, 4, 0, 3]
    assert rank.tolist() == [0, 0, 1, 1, 2]


def test_keyphrases_are_rake_phrases_without_stop_words() -> None:
    phrases = keyphrases(
        "Write a Python function that sorts a list of integers using merge sort.", 8, stop_words()
    )
    assert phrases[0] == "integers using merge sort"  # the longest phrase scores highest (degree/frequency)
    assert "python function" in phrases
    assert not {"a", "that", "of"} & set(phrases)
    assert len(keyphrases(" ".join(f"w{i} the" for i in range(40)), 5, stop_words())) == 5  # capped


def test_concept_filter_rejects_contradictions_and_keeps_consistent_samples() -> None:
    g = ConceptGraph(max_concepts=8)
    assert g.check("What is the capital of Australia?", "The capital of Australia is Canberra.") is None
    assert g.check("What is the capital of France?", "Paris is the capital of France.") is None
    # the same question answered otherwise: rejected, naming what it contradicts
    reason = g.check("What is the capital of Australia?", "The capital of Australia is Sydney.")
    assert reason is not None and "sydney" in reason and "canberra" in reason
    # the accepted answer again, or a new question, is consistent
    assert (
        g.check("What is the capital of Australia?", "Canberra, in the Australian Capital Territory.") is None
    )
    assert g.check("What is the capital of Japan?", "Tokyo is the capital of Japan.") is None
    # a boiling point contradiction
    assert (
        g.check("At what temperature does water boil at sea level?", "Water boils at 100 degrees Celsius.")
        is None
    )
    assert g.check(
        "At what temperature does water boil at sea level?", "Water boils at 80 degrees Fahrenheit."
    )
    # a one-concept instruction never conflicts (too little context to call it a contradiction)
    assert g.check("Poem?", "Roses are red.") is None
    assert g.check("Poem?", "Violets are blue.") is None


def test_s2ric_recovers_blocks_of_a_sparse_graph() -> None:
    """Four well separated groups of points (vectors near four orthogonal directions): fixed K and the eigengap
    both recover them exactly, and the same seed gives the same labels and coordinates."""
    from sklearn.metrics import adjusted_rand_score

    from sift.selection.kernels.cluster import s2ric

    rng = np.random.default_rng(0)
    centres = np.eye(4, 32) * 3.0
    truth = np.repeat(np.arange(4), 50)
    x = centres[truth] + rng.normal(0, 0.4, (200, 32))
    fixed = s2ric(x, 4, k_neighbors=10, seed=1)
    auto = s2ric(x, "auto", k_neighbors=10, seed=1)
    assert adjusted_rand_score(truth, fixed.labels) == 1.0
    assert auto.method == "eigengap" and auto.k == 4
    assert adjusted_rand_score(truth, auto.labels) == 1.0
    again = s2ric(x, 4, k_neighbors=10, seed=1)
    assert np.array_equal(fixed.labels, again.labels) and np.array_equal(fixed.coords, again.coords)


def test_s2ric_on_a_sample_assigns_the_rest_out_of_sample() -> None:
    from sklearn.metrics import adjusted_rand_score

    from sift.selection.kernels.cluster import s2ric

    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(4), 100)
    x = np.eye(4, 32)[truth] * 3.0 + rng.normal(0, 0.4, (400, 32))
    sampled = s2ric(x, 4, k_neighbors=10, seed=1, sample=120)
    assert sampled.sample == 120 and sampled.labels.shape == (400,) and np.all(np.isfinite(sampled.coords))
    assert adjusted_rand_score(truth, sampled.labels) == 1.0
