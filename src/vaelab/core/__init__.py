"""The ground floor: config, errors, files, statistics, random streams, distributions, checkpoints, device.

Imports nothing of vaelab."""
