"""A local server that behaves like XNAT 1.8 for tests, benchmarks and demos."""
