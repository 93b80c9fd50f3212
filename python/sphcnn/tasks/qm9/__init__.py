"""QM9 (Ramakrishnan et al., Scientific Data 1, 140022, 2014): predicting the 12
standard molecular properties with spin-weighted spherical CNNs, as in Scaling
Spherical CNNs (Esteves, Slotine & Makadia, ICML 2023)."""
