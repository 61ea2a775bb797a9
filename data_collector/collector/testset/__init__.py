"""The labelled test images: scanning, the hash cache, shards, leak checks and perturbed copies."""
