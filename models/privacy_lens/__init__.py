"""The optimised privacy lens: its Zernike coefficients (``lens.json``) and the script that made them."""
