"""Helpers of the tests, benchmarks and scripts: waiting for servers, scratch databases. Not shipped."""
