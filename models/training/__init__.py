"""Self-supervised training of the pulse model (Gideon & Stent 2021) on unlabeled video; needs ``[train]``."""
