"""Simulators of neural data with known ground truth (spikes, EMG) for tests and benchmarks."""
