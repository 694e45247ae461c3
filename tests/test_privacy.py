"""The privacy lens's optics (fusion.privacy): Zernike polynomials, PSFs, image formation, Wiener."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from skimage import restoration

from fusion.privacy import (
    BGR_WAVELENGTHS_UM,
    Lens,
    LowResSensor,
    Optics,
    form_image,
    lens_psfs,
    noll_to_nm,
    psf,
    psf_for_width,
    psf_rms_radius,
    surface_steepness,
    zernike,
)


def _disk_grid(n: int = 600) -> tuple[np.ndarray, np.ndarray, float]:
    """Polar points on a midpoint grid of the unit disk, with each point's area."""
    r = (np.arange(n) + 0.5) / n
    t = (np.arange(2 * n) + 0.5) * np.pi / n
    rho, theta = np.meshgrid(r, t, indexing="ij")
    area = rho * (1 / n) * (np.pi / n)
    return rho, theta, area  # type: ignore[return-value]


def test_noll_indices_follow_nolls_table() -> None:
    expected = [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (3, -1), (3, 1), (3, -3), (3, 3), (4, 0),
                (4, 2), (4, -2), (4, 4), (4, -4)]
    assert [noll_to_nm(j) for j in range(1, 16)] == expected
    with pytest.raises(ValueError, match="Noll index"):
        noll_to_nm(0)


def test_zernike_matches_closed_forms() -> None:
    rng = np.random.default_rng(1)
    rho, theta = rng.uniform(0, 1, 200), rng.uniform(-np.pi, np.pi, 200)
    closed = {
        1: np.ones_like(rho),
        2: 2 * rho * np.cos(theta),
        4: math.sqrt(3) * (2 * rho**2 - 1),
        6: math.sqrt(6) * rho**2 * np.cos(2 * theta),
        7: math.sqrt(8) * (3 * rho**3 - 2 * rho) * np.sin(theta),
        11: math.sqrt(5) * (6 * rho**4 - 6 * rho**2 + 1),
    }
    for j, want in closed.items():
        np.testing.assert_allclose(zernike(j, rho, theta), want, atol=1e-12, err_msg=f"Z{j}")
    assert zernike(4, np.array([1.5]), np.array([0.0]))[0] == 0.0  # outside the disk


def test_zernike_are_orthonormal_on_the_unit_disk() -> None:
    rho, theta, area = _disk_grid()
    z = np.stack([zernike(j, rho, theta) for j in range(1, 16)])
    gram = np.einsum("iab,jab,ab->ij", z, z, area) / np.pi
    np.testing.assert_allclose(gram, np.eye(15), atol=2e-3)


def test_zero_surface_gives_the_airy_pattern_summing_to_one() -> None:
    optics = Optics(psf_px=31, oversample=7)
    wavelength = 0.55
    h = psf([0.0], wavelength, optics)
    assert h.shape == (31, 31)
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.unravel_index(np.argmax(h), h.shape) == (15, 15)
    # The diffraction-limited PSF: [2 J1(x)/x]², x = π r / (λ F#), integrated over each pixel.
    k = 21
    c = (np.arange(31 * k) - (31 * k) // 2) * optics.pixel_um / k
    x = np.pi * np.hypot(*np.meshgrid(c, c)) / (wavelength * optics.f_number)
    airy = np.where(x == 0, 1.0, (2 * special.j1(np.maximum(x, 1e-12)) / np.maximum(x, 1e-12)) ** 2)
    airy = airy.reshape(31, k, 31, k).sum(axis=(1, 3))
    airy /= airy.sum()
    assert np.abs(h - airy).max() < 0.01
    assert h[15, 15] == pytest.approx(airy[15, 15], rel=0.02)


def test_defocus_blurs_and_its_sign_does_not_matter() -> None:
    optics = Optics(psf_px=41)
    sharp, plus, minus = (psf([0, 0, 0, a], 0.55, optics) for a in (0.0, 1.0, -1.0))
    assert plus.max() < 0.1 * sharp.max()
    np.testing.assert_allclose(plus, minus, atol=1e-9)
    for one in lens_psfs([0, 0, 0, 1.0], optics):
        assert one.sum() == pytest.approx(1.0)


def test_a_surface_too_steep_for_the_grid_is_refused() -> None:
    optics = Optics(psf_px=41)
    assert surface_steepness([0, 0, 0, 0.5], optics) < 1.0
    assert surface_steepness([0, 0, 0, 1.0], optics) == pytest.approx(2 * surface_steepness([0, 0, 0, 0.5], optics))
    with pytest.raises(ValueError, match="too steep"):
        psf([0, 0, 0, 4.0], 0.55, optics)


def test_too_coarse_oversampling_is_refused() -> None:
    with pytest.raises(ValueError, match="oversample"):
        psf([0.0], BGR_WAVELENGTHS_UM[0], Optics(oversample=3))
    with pytest.raises(ValueError, match="odd"):
        Optics(psf_px=80)


def _scene(seed: int = 0, shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    """Smooth random texture with edges: a stand-in for a face's detail at several scales."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    for size in (3, 7, 15):
        noise = rng.normal(size=(shape[0] // size + 2, shape[1] // size + 2))
        img += np.kron(noise, np.ones((size, size)))[: shape[0], : shape[1]]
    img = (img - img.min()) / np.ptp(img)
    return img


def test_wiener_with_the_true_psf_undoes_a_known_blur() -> None:
    scene = _scene()
    h = psf([0, 0, 0, 0.5], 0.55, Optics(psf_px=21))
    # Circular convolution: the model skimage's Wiener inverts.
    pad = np.zeros_like(scene)
    pad[:21, :21] = h
    pad = np.roll(pad, (-10, -10), axis=(0, 1))
    blurred = np.real(np.fft.ifft2(np.fft.fft2(scene) * np.fft.fft2(pad)))
    restored = restoration.wiener(blurred, h, balance=1e-6, clip=False)  # noise-free: little regularisation
    blur_error = np.abs(blurred - scene).mean()
    restored_error = np.abs(restored - scene).mean()
    assert blur_error > 0.03
    assert restored_error < 0.2 * blur_error


def test_live_lens_matches_the_full_resolution_model() -> None:
    grey = (_scene(2, (240, 320)) * 255).astype(np.uint8)
    image = np.dstack([grey, np.roll(grey, 7, axis=1), grey[::-1]])
    psfs = lens_psfs([0, 0, 0, 1.0], Optics(psf_px=41))
    exact = form_image(image, psfs)
    live = Lens("defocus", psfs, work_scale=2, noise_std=0.0).apply(image)
    assert live.shape == image.shape and live.dtype == np.uint8
    assert np.abs(live.astype(int) - exact).mean() < 3.0
    assert np.abs(image.astype(int) - exact).mean() > 10.0  # it is blurred


@pytest.mark.parametrize("preset", ["defocus", "lens"])
def test_committed_presets_live_path_is_the_full_resolution_model(preset: str) -> None:
    """The reduced-resolution live path of the committed surfaces gives the full-resolution image (SSIM)."""
    from skimage.metrics import structural_similarity

    from edge.privacy import build_lensing

    lensing = build_lensing(preset)  # type: ignore[arg-type]  # a literal of the Preset type
    assert isinstance(lensing, Lens)
    quiet = Lens(preset, lensing.psfs, work_scale=lensing.work_scale, noise_std=0.0)
    rng = np.random.default_rng(5)
    image = np.asarray(rng.integers(0, 256, (480, 640, 3)), dtype=np.uint8)
    image[100:300, 250:400] = (120, 150, 205)  # a face-sized skin patch on the texture
    exact = form_image(image, lensing.psfs)
    live = quiet.apply(image)
    similarity = structural_similarity(exact, live, channel_axis=2, data_range=255)
    assert similarity > 0.99
    assert structural_similarity(image, exact, channel_axis=2, data_range=255) < 0.5  # it is blurred


def test_live_lens_noise_is_the_sensors_per_pixel_and_independent_frame_to_frame() -> None:
    """Per pixel N(0, σ²) at full resolution, unbiased, and a region's mean σ²/pixels, as in :func:`form_image`
    (noise drawn on the working grid and enlarged would give a region's mean 16 times that power)."""
    sigma, side = 2.0, 64
    image = np.full((240, 320, 3), 140, np.uint8)
    lens = Lens("defocus", lens_psfs([0, 0, 0, 1.0], Optics(psf_px=41)), work_scale=4, noise_std=sigma, seed=3)
    quiet = Lens("defocus", lens.psfs, work_scale=4, noise_std=0.0).apply(image).astype(np.float64)
    frames = np.stack([lens.apply(image) for _ in range(60)]).astype(np.float64)
    noise = frames - quiet
    assert abs(noise.std() - sigma) < 0.1 * sigma
    assert abs(noise.mean()) < 0.05
    region_means = noise[:, 80 : 80 + side, 100 : 100 + side].mean(axis=(1, 2))
    assert region_means.std() < 1.5 * sigma / side  # 4σ/side if the noise moved in 4×4 blocks
    # frame to frame: independent draws, not one fixed pattern
    assert abs(np.corrcoef(region_means[:-1, 1], region_means[1:, 1])[0, 1]) < 0.4


def test_psf_for_another_width_keeps_unit_sum_and_odd_side() -> None:
    psfs = lens_psfs([0, 0, 0, 1.0], Optics(psf_px=41))
    small = psf_for_width(psfs, 160)
    assert small.shape[1] % 2 == 1 and small.shape[1] < 41
    np.testing.assert_allclose(small.sum(axis=(1, 2)), 1.0)


def test_psf_rms_radius_of_a_uniform_disc_is_its_radius_over_root_two() -> None:
    y, x = np.mgrid[:121, :121] - 60.0
    disc = (x**2 + y**2 <= 40.0**2).astype(np.float64)
    off_centre = np.roll(disc, (7, -5), axis=(0, 1))  # about its own centroid, not the grid's
    assert psf_rms_radius(np.stack([disc, 3 * disc, off_centre])) == pytest.approx(40 / np.sqrt(2), rel=0.01)
    with pytest.raises(ValueError, match="C×M×M"):
        psf_rms_radius(disc)


def test_lowres_sensor_shows_16_by_16_blocks() -> None:
    image = np.random.default_rng(3).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    out = LowResSensor(16).apply(image)
    assert out.shape == image.shape
    blocks = out[:, :, 1].reshape(16, 10, 16, 10)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_bad_frames_are_refused_with_a_message() -> None:
    lens = Lens("x", lens_psfs([0.0], Optics(psf_px=11)))
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        lens.apply(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="3×M×M"):
        Lens("x", np.zeros((2, 5, 5)))
