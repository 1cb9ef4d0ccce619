"""PKSampler: P identities x K images per batch, seeded, a fixed batch count per epoch."""

import sys
from collections import Counter

import numpy as np
import pytest

from keras_msreid.data.pk_sampler import PKSampler


def market_like_pids(seed=0, identities=40):
    """Identities with 1 to 14 images each, shuffled record order."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(identities), rng.integers(1, 15, identities))
    return rng.permutation(pids)


def slow_max_batches(image_counts, p, k):
    """Largest B such that a greedy draw of the p identities with most chunks left lasts B
    batches: an obviously correct (if slow) upper bound construction."""
    chunks = [max(n // k, 1) for n in image_counts]
    best = 0
    for batches in range(sum(chunks) // p + 1):
        left = [min(c, batches) for c in chunks]
        ok = True
        for _ in range(batches):
            order = sorted(range(len(left)), key=lambda i: -left[i])[:p]
            if left[order[-1]] == 0:
                ok = False
                break
            for i in order:
                left[i] -= 1
        if ok:
            best = batches
    return best


def check_batch_structure(batches, pids, p, k):
    for batch in batches:
        blocks = pids[batch].reshape(p, k)
        assert (blocks == blocks[:, :1]).all(), "each block of k must hold one identity"
        assert len(set(blocks[:, 0])) == p, "the p blocks must hold distinct identities"


@pytest.mark.parametrize("p, k", [(4, 4), (8, 2), (3, 5)])
def test_every_batch_has_p_distinct_identities_with_k_images(p, k):
    pids = market_like_pids()
    sampler = PKSampler(pids, p=p, k=k, seed=3)
    batches = sampler.epoch(0)
    assert batches.shape == (sampler.batches_per_epoch, p * k)
    assert batches.dtype == np.int64
    assert batches.min() >= 0 and batches.max() < len(pids)
    check_batch_structure(batches, pids, p, k)


@pytest.mark.parametrize("seed", range(6))
def test_batches_per_epoch_is_the_most_the_chunks_allow(seed):
    pids = market_like_pids(seed, identities=int(np.random.default_rng(seed).integers(5, 25)))
    if seed % 2:
        # Skew: a few identities with many images cap the batch count below chunks / p.
        pids = np.concatenate([pids, np.repeat(pids.max() + np.arange(1, 3), 90)])
    p, k = 4, 3
    counts = np.bincount(pids)
    sampler = PKSampler(pids, p=p, k=k)
    assert sampler.batches_per_epoch == slow_max_batches(counts, p, k)
    for epoch in range(3):
        assert len(sampler.epoch(epoch)) == sampler.batches_per_epoch


def test_one_dominant_identity_still_fills_every_batch():
    # Chunks [10, 1, 1, 1] with p=2: 3 batches, the dominant identity in each of them.
    pids = np.array([0] * 40 + [1] * 4 + [2] * 4 + [3] * 4)
    sampler = PKSampler(pids, p=2, k=4, seed=0)
    batches = sampler.epoch(0)
    assert sampler.batches_per_epoch == 3
    check_batch_structure(batches, pids, 2, 4)
    assert all(0 in pids[batch] for batch in batches)


def test_epoch_is_deterministic_given_seed_and_epoch_index():
    pids = market_like_pids()
    first = PKSampler(pids, p=4, k=4, seed=7)
    again = PKSampler(pids, p=4, k=4, seed=7)
    np.testing.assert_array_equal(first.epoch(2), again.epoch(2))
    assert not np.array_equal(first.epoch(2), first.epoch(3))
    assert not np.array_equal(first.epoch(2), PKSampler(pids, p=4, k=4, seed=8).epoch(2))


def test_epoch_covers_every_identity_and_every_image_once_when_counts_divide():
    # 24 identities x 8 images with p=4, k=4: 48 chunks, exactly 12 batches.
    pids = np.random.default_rng(0).permutation(np.repeat(np.arange(24), 8))
    sampler = PKSampler(pids, p=4, k=4, seed=1)
    batches = sampler.epoch(5)
    assert sampler.batches_per_epoch == 12
    assert sorted(batches.ravel()) == list(range(len(pids)))


def test_uneven_counts_use_each_image_at_most_once_and_most_identities():
    pids = market_like_pids(seed=2)
    p, k = 4, 4
    sampler = PKSampler(pids, p=p, k=k, seed=0)
    batches = sampler.epoch(0)
    counts = Counter(batches.ravel().tolist())
    images_per_id = np.bincount(pids)
    for index, times in counts.items():
        if images_per_id[pids[index]] >= k:
            assert times == 1, "identities with >= k images are sampled without replacement"
    # Fewer than p chunks are dropped to make the batches come out even.
    assert len(set(pids[batches.ravel()])) > len(images_per_id) - p


def test_identity_with_fewer_than_k_images_is_topped_up_with_its_own_images():
    pids = np.array([0, 0] + [1] * 4 + [2] * 4 + [3] * 4)
    sampler = PKSampler(pids, p=4, k=4, seed=0)
    (batch,) = sampler.epoch(0)
    block = next(block for block in batch.reshape(4, 4) if pids[block[0]] == 0)
    assert set(block) == {0, 1}, "both images of the small identity, then repeats"


def test_identities_may_be_any_integers():
    pids = np.repeat([-5, 3, 1000, 7], 4)
    sampler = PKSampler(pids, p=4, k=4)
    (batch,) = sampler.epoch(0)
    assert sorted(set(pids[batch])) == [-5, 3, 7, 1000]


def test_too_few_identities_names_p_and_the_count():
    with pytest.raises(ValueError, match=r"at least p=16 identities .* only 3 identities"):
        PKSampler(np.repeat([0, 1, 2], 4), p=16, k=4)


@pytest.mark.parametrize("p, k", [(0, 4), (4, 0)])
def test_non_positive_p_or_k_is_rejected(p, k):
    with pytest.raises(ValueError, match=rf"p >= 1 and k >= 1, got p={p}, k={k}"):
        PKSampler(np.arange(8), p=p, k=k)


def test_sampler_module_does_not_import_tensorflow():
    # Run in a fresh interpreter: other tests in this session import TensorFlow.
    import subprocess

    code = (
        "import sys; import keras_msreid.data.pk_sampler; "
        "assert 'tensorflow' not in sys.modules, 'pk_sampler pulled in TensorFlow'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
