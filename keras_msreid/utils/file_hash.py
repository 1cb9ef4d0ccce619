"""The SHA-256 of a file: how exports and feature stores name the model they came from."""

import hashlib


def sha256_of_file(path, block_size=1 << 20):
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()
