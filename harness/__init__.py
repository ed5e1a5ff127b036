"""What the tests and the benchmarks share: voxserve processes, the engines' stand-in servers, a
private Redis, texts, probes and a listener. It imports neither ``tests`` nor ``bench``."""
