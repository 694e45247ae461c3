"""The contrastive loss and the unlabeled model-selection score of Gideon & Stent (2021).

The model's output on a clip (anchor) and on the clip resampled by a factor q (negative) must differ in
frequency by q; the negative's output resampled by 1/q (positive) must match the anchor's. Distances are
the mean squared difference of power spectra, each normalised to unit sum over 40–180 bpm, averaged over
all pairs of ``views`` random windows of ``view_s`` seconds (multi-view triplet loss).
"""

from __future__ import annotations

import math

import torch

__all__ = ["band_psd", "max_cross_correlation", "positive_from_negative", "spectral_distance", "triplet_loss"]

BAND_BPM = (40.0, 180.0)


def positive_from_negative(y_neg: torch.Tensor, q: float) -> torch.Tensor:
    """The negative's output (N×T, frame k at time q·k) resampled to the anchor's times (frame m at m).

    Returns:
        N×M with M = the anchor frames the negative covers (all T when q ≥ 1).
    """
    t = y_neg.shape[-1]
    m = min(t, math.floor(q * (t - 1)) + 1)
    pos = torch.arange(m, dtype=y_neg.dtype) / q
    i0 = pos.floor().long().clamp(max=t - 2)
    u = pos - i0.to(y_neg.dtype)
    return y_neg[:, i0] * (1 - u) + y_neg[:, i0 + 1] * u


def band_psd(x: torch.Tensor, fs_hz: float, n_fft: int = 1024) -> torch.Tensor:
    """Power spectra of the rows of ``x`` (…×L) in the pulse band, each normalised to unit sum."""
    x = x - x.mean(dim=-1, keepdim=True)
    x = x * torch.hann_window(x.shape[-1], periodic=False, dtype=x.dtype)
    spec = torch.fft.rfft(x, n=max(n_fft, x.shape[-1]))
    power = spec.real**2 + spec.imag**2
    freqs_bpm = torch.fft.rfftfreq(max(n_fft, x.shape[-1]), d=1.0 / fs_hz) * 60.0
    band = (freqs_bpm >= BAND_BPM[0]) & (freqs_bpm <= BAND_BPM[1])
    p = power[..., band]
    out: torch.Tensor = p / (p.sum(dim=-1, keepdim=True) + 1e-8)
    return out


def spectral_distance(y: torch.Tensor, target: torch.Tensor, fs_hz: float) -> torch.Tensor:
    """Mean over rows of the PSD-MSE between ``y`` and ``target`` (N×L): unit-sum 40–180 bpm spectra,
    squared differences summed over frequency. Blind to phase and scale, so a teacher's lag and gain do
    not matter, only where its power is."""
    return ((band_psd(y, fs_hz) - band_psd(target, fs_hz)) ** 2).sum(dim=-1).mean()


def _views(y: torch.Tensor, length: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random windows of ``length`` from each row of ``y`` (N×L) → N×count×length."""
    starts = torch.randint(0, y.shape[-1] - length + 1, (count,), generator=gen)
    return torch.stack([y[:, int(s) : int(s) + length] for s in starts], dim=1)


def triplet_loss(
    y_anchor: torch.Tensor,
    y_neg: torch.Tensor,
    q: float,
    *,
    fs_hz: float,
    views: int = 4,
    view_s: float = 5.0,
    gen: torch.Generator,
) -> torch.Tensor:
    """Multi-view triplet loss: mean PSD distance anchor–positive minus mean anchor–negative.

    Args:
        y_anchor: the model's output on the clips, N×T.
        y_neg: its output on the same clips resampled by ``q``, N×T.
        q: the resampling factor (frame k of the negative is at time q·k of the anchor).
        fs_hz: the output's rate.
        views: windows per signal (V_N).
        view_s: window length (V_L).
        gen: the random windows' generator.
    """
    y_pos = positive_from_negative(y_neg, q)
    length = min(round(view_s * fs_hz), y_pos.shape[-1])
    anchor_views = band_psd(_views(y_anchor[:, : y_pos.shape[-1]], length, views, gen), fs_hz)
    pos_views = band_psd(_views(y_pos, length, views, gen), fs_hz)
    neg_views = band_psd(_views(y_neg, length, views, gen), fs_hz)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # N×V×F, N×V×F → mean over all V×V pairs
        # Summed over frequency (not averaged): a unit-sum spectrum's squares are tiny per bin.
        return ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(dim=-1).mean()

    return dist(anchor_views, pos_views) - dist(anchor_views, neg_views)


def max_cross_correlation(a: torch.Tensor, b: torch.Tensor, fs_hz: float, max_lag_s: float = 0.5) -> torch.Tensor:
    """Maximum normalised cross-correlation of the rows of ``a`` and ``b`` (N×L), in the pulse band.

    Both are band-limited to 40–180 bpm, z-scored, and correlated at lags up to ``max_lag_s``.
    """
    n = a.shape[-1]
    n_fft = 2 * n
    freqs_bpm = torch.fft.rfftfreq(n_fft, d=1.0 / fs_hz) * 60.0
    band = ((freqs_bpm >= BAND_BPM[0]) & (freqs_bpm <= BAND_BPM[1])).to(a.dtype)

    def filtered(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-1, keepdim=True)
        y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * band, n=n_fft)[..., :n]
        y = y - y.mean(dim=-1, keepdim=True)
        unit: torch.Tensor = y / (y.norm(dim=-1, keepdim=True) + 1e-8)
        return unit

    fa, fb = filtered(a), filtered(b)
    xcorr = torch.fft.irfft(torch.fft.rfft(fa, n=n_fft) * torch.fft.rfft(fb, n=n_fft).conj(), n=n_fft)
    lag = round(max_lag_s * fs_hz)
    near = torch.cat([xcorr[..., : lag + 1], xcorr[..., n_fft - lag :]], dim=-1)
    best: torch.Tensor = near.max(dim=-1).values
    return best
