"""MNIST and its pixel spaces: download and load, grey/dequantised/binarised pixels, the evaluation's image sets."""
