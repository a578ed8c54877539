"""Generation: generator loading, energies, the one guided sampler and the generation job."""
