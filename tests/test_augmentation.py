import numpy as np
import pytest
from scipy import ndimage

from dl_course import data
from dl_course.augmentation import add_noise, augmenter, transform


@pytest.fixture(scope="module")
def images():
    return data.load_digits()[0][:20]


def test_whole_pixel_shifts_move_pixels_and_fill_with_zeros(images):
    square = images.reshape(-1, 8, 8)
    moved = transform(images, shifts=(1, -2)).reshape(-1, 8, 8)  # right 1, up 2
    expected = np.zeros_like(square)
    expected[:, :-2, 1:] = square[:, 2:, :-1]
    np.testing.assert_array_equal(moved, expected)


def test_quarter_turns_equal_rot90(images):
    square = images.reshape(-1, 8, 8)
    np.testing.assert_array_equal(transform(square, 90), np.rot90(square, 1, axes=(1, 2)))
    np.testing.assert_array_equal(transform(square, -180), np.rot90(square, 2, axes=(1, 2)))


@pytest.mark.parametrize("angle", [7.0, -13.0, 30.0])
def test_rotations_agree_with_scipy(images, angle):
    square = images.reshape(-1, 8, 8)
    theirs = np.stack(
        [ndimage.rotate(x, angle, reshape=False, order=1, mode="constant") for x in square]
    )
    np.testing.assert_allclose(transform(square, angle), theirs, atol=1e-8)


def test_each_image_gets_its_own_rotation_and_shift(images):
    angles, shifts = np.linspace(-20, 20, 20), np.arange(40).reshape(20, 2) % 3 - 1
    together = transform(images, angles, shifts)
    for i in range(20):
        alone = transform(images[i : i + 1], angles[i], shifts[i])
        np.testing.assert_allclose(together[i], alone[0], atol=1e-12)


def test_noise_is_seeded_and_clipped(images):
    a = add_noise(images, 0.3, np.random.default_rng(0))
    b = add_noise(images, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0 and not np.array_equal(a, images)
    raw = add_noise(images, 0.3, np.random.default_rng(0), clip=None)
    assert raw.min() < 0.0
    np.testing.assert_allclose((raw - images).std(), 0.3, rtol=0.05)


def test_the_augmenter_stays_within_its_ranges(images):
    augment = augmenter(max_shift=1, max_angle=0.0)
    out = augment(images, np.random.default_rng(0))
    # with no rotation each output is one of the nine whole-pixel shifts of its input
    options = [transform(images, shifts=(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    assert all(any(np.array_equal(out[i], o[i]) for o in options) for i in range(20))
    assert augmenter(0, 0, 0)(images, np.random.default_rng(1)).tolist() == images.tolist()
    assert out.shape == images.shape


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: transform(np.ones((3, 10))), ValueError, "square number of pixels"),
        (lambda: transform(np.ones((3, 4, 5))), ValueError, "must be square"),
        (lambda: transform(np.ones((3, 16)), angles=[1.0, 2.0]), ValueError, "one per image"),
        (lambda: transform(np.ones((3, 16)), shifts=[1.0, 2.0, 3.0]), ValueError, "one per image"),
        (lambda: add_noise(np.ones((3, 4)), -1.0, np.random.default_rng()), ValueError, "std"),
        (lambda: add_noise(np.ones((3, 4)), 0.1, 0), TypeError, "rng must be a numpy"),
        (lambda: add_noise(np.ones((3, 4)), 0.1, np.random.default_rng(), (1, 0)), ValueError,
         "low < high"),
        (lambda: augmenter(max_angle=200.0), ValueError, "max_angle must be <= 180"),
        (lambda: augmenter()(np.ones((2, 4)), 3), TypeError, "rng must be"),
    ],
)  # fmt: skip
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
