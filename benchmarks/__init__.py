"""Performance benchmarks: machine peaks, training throughput and generation throughput."""
