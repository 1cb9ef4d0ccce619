"""P x K identity sampling for metric-learning batches, in pure numpy.

Every batch holds `p` distinct identities with `k` images each, so that every
anchor has positives and negatives inside the batch (batch-hard triplets, pair
scores). Semantics follow torchreid's `RandomIdentitySampler`: each identity's
images are shuffled and cut into chunks of `k` (an identity with fewer than `k`
images is topped up by sampling its own images with replacement; a trailing partial
chunk is dropped), and each batch draws `p` identities at random, taking one chunk
from each.

One difference, so that `model.fit` can rely on `steps_per_epoch`: torchreid's greedy
draw can run out of distinct identities early and its batch count varies by epoch.
Here every epoch has exactly `batches_per_epoch` batches, the largest number the
chunks allow: chunks that can never be used are dropped first, and an identity is
forced into a batch only when it would otherwise keep more chunks than batches left.

Example:

```python
sampler = PKSampler([r.pid for r in records], p=16, k=4, seed=0)
for batch in sampler.epoch(0):        # shape (sampler.batches_per_epoch, 64)
    batch_records = [records[i] for i in batch]
```
"""

import numpy as np

from keras_msreid.errors import UserError


class PKSampler:
    """Deterministic P identities x K images batches of record indices.

    Args:
        pids: sequence of int, the identity of each record (any integers).
        p: identities per batch.
        k: images per identity in a batch.
        seed: int; `epoch(i)` depends only on `(seed, i)`.
    """

    def __init__(self, pids, p=16, k=4, seed=0):
        if p < 1 or k < 1:
            raise ValueError(f"PKSampler needs p >= 1 and k >= 1, got p={p}, k={k}.")
        pids = np.asarray(pids)
        if pids.ndim != 1:
            raise ValueError(f"PKSampler expects a 1-D sequence of pids, got shape {pids.shape}.")
        identities, inverse = np.unique(pids, return_inverse=True)
        if len(identities) < p:
            raise UserError(
                f"PKSampler needs at least p={p} identities per batch, "
                f"but the records hold only {len(identities)} identities."
            )
        self.p = int(p)
        self.k = int(k)
        self.seed = int(seed)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse)
        self._members = np.split(order, np.cumsum(counts)[:-1])
        chunks = np.maximum(counts // self.k, 1)
        self.batches_per_epoch = _max_batches(chunks, self.p)

    @property
    def batch_size(self):
        return self.p * self.k

    def epoch(self, epoch_index):
        """Record indices for one epoch, shape `(batches_per_epoch, p * k)` int64."""
        rng = np.random.default_rng([self.seed, int(epoch_index)])
        chunks = [self._chunks_of(members, rng) for members in self._members]
        chunks = self._drop_unusable(chunks, rng)
        remaining = np.array([len(c) for c in chunks])
        batches = np.empty((self.batches_per_epoch, self.p * self.k), dtype=np.int64)
        for b in range(self.batches_per_epoch):
            batches_left = self.batches_per_epoch - b
            # Invariant: remaining.sum() == p * batches_left and remaining <= batches_left,
            # so identities with a chunk for every batch left must be taken now.
            forced = np.flatnonzero(remaining == batches_left)
            optional = np.flatnonzero((remaining > 0) & (remaining < batches_left))
            chosen = np.concatenate(
                [forced, rng.choice(optional, self.p - len(forced), replace=False)]
            )
            rng.shuffle(chosen)
            for slot, identity in enumerate(chosen):
                remaining[identity] -= 1
                batches[b, slot * self.k : (slot + 1) * self.k] = chunks[identity][
                    remaining[identity]
                ]
        return batches

    def _chunks_of(self, members, rng):
        """Shuffled chunks of k indices of one identity, shape (n_chunks, k)."""
        members = rng.permutation(members)
        if len(members) < self.k:
            members = np.concatenate(
                [members, rng.choice(members, self.k - len(members), replace=True)]
            )
        n_chunks = len(members) // self.k
        return members[: n_chunks * self.k].reshape(n_chunks, self.k)

    def _drop_unusable(self, chunks, rng):
        """Keep exactly p * batches_per_epoch chunks, at most batches_per_epoch each."""
        chunks = [c[: self.batches_per_epoch] for c in chunks]
        counts = np.array([len(c) for c in chunks])
        excess = counts.sum() - self.p * self.batches_per_epoch
        # Fewer than p chunks are in excess; take them from the identities with most
        # chunks (random among ties) so that as many identities as possible are seen.
        tie_break = rng.random(len(counts))
        for identity in np.lexsort((tie_break, -counts))[:excess]:
            chunks[identity] = chunks[identity][:-1]
        return chunks


def _max_batches(chunks, p):
    """Largest B with sum(min(chunks, B)) >= p * B: the most PK batches possible."""
    low, high = 0, int(chunks.sum()) // p
    while low < high:
        mid = (low + high + 1) // 2
        if np.minimum(chunks, mid).sum() >= p * mid:
            low = mid
        else:
            high = mid - 1
    return low
