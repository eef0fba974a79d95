"""Private fused fast paths: the same operations as the reference passes, with less memory or fewer launches."""
