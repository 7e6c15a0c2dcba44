"""On-device batch augmentation and the batch iterator."""

import numpy as np
import pytest
import torch

from hsd.data.augment import affine, augment, flip_roll
from hsd.data.cache import FrameSplit
from hsd.data.loader import iterate_batches
from hsd.data.partition import ht_partition


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def same_frames_batch(t=3, n=8, c=2, h=10, w=10, seed=0):
    """x [T, N, C, H, W] whose T frames of each sample are identical."""
    torch.manual_seed(seed)
    base = torch.rand(n, c, h, w)
    return base.unsqueeze(0).expand(t, n, c, h, w).contiguous()


def test_flip_roll_matches_torch_roll_and_flip():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 2, 7, 9)
    flip = torch.tensor([True, False, True])
    dy, dx = torch.tensor([1, -5, 0]), torch.tensor([3, 2, -4])
    out = flip_roll(x, flip, dy, dx)
    for n in range(3):
        ref = x[:, n].flip(-1) if flip[n] else x[:, n]
        ref = torch.roll(ref, shifts=(int(dy[n]), int(dx[n])), dims=(-2, -1))
        torch.testing.assert_close(out[:, n], ref, rtol=0, atol=0)


def test_affine_rotation_by_90_degrees_is_rot90_and_zero_shear_is_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 2, 6, 6)
    rot = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])
    out = affine(x, rot)
    ref = torch.rot90(x, k=1, dims=(-2, -1))
    alt = torch.rot90(x, k=-1, dims=(-2, -1))
    assert torch.equal(out, ref) or torch.equal(out, alt)
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert torch.equal(affine(x, eye), x)


@pytest.mark.parametrize("kind", ["flip_roll", "nda"])
def test_augmentation_identical_across_frames_and_seeded(kind):
    x = same_frames_batch()
    out = augment(x, kind, seeded(1))
    assert out.shape == x.shape
    assert torch.equal(out, out[:1].expand_as(out))  # every frame of a sample got the same op
    assert not torch.equal(out, x)
    assert torch.equal(out, augment(x, kind, seeded(1)))
    assert not torch.equal(out, augment(x, kind, seeded(2)))


def test_nda_uses_all_three_ops():
    # a centred blob: roll moves it, rotate/shear keep the centre pixel but move the corners
    x = same_frames_batch(t=1, n=64, c=1, h=16, w=16)
    out = augment(x, "nda", seeded(3))
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # flip/shift/warp almost always change a random image
    # mass is not preserved by warps (corners fall outside), always preserved by flip+roll
    kept = torch.isclose(out.sum((0, 2, 3, 4)), x.sum((0, 2, 3, 4)))
    assert 0 < kept.sum() < 64


def test_augment_errors_and_none():
    x = same_frames_batch()
    assert augment(x, "none") is x
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(x, "cutmix")
    with pytest.raises(ValueError, match=r"\[T, N, C, H, W\]"):
        augment(x[0], "flip_roll")


def make_split(n=10, f=6, s=8, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 5, (n, f, 2, s, s)).astype(np.float16)
    return FrameSplit("train", frames, np.arange(n, dtype=np.int64) % 3)


def test_batches_shape_order_and_frame_slice():
    split = make_split()
    _, ft = ht_partition(6, 2, 3)
    batches = list(iterate_batches(split, 4, ft, shuffle=False))
    assert [b[0].shape for b in batches] == [(3, 4, 2, 8, 8), (3, 4, 2, 8, 8), (3, 2, 2, 8, 8)]
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal(x.numpy(), split.frames[:4, 2:5].transpose(1, 0, 2, 3, 4))
    np.testing.assert_array_equal(y.numpy(), split.labels[:4])
    assert len(list(iterate_batches(split, 4, ft, shuffle=False, drop_last=True))) == 2


def test_shuffle_covers_every_sample_once_and_is_seeded():
    split = make_split()
    ys = [y for _, y in iterate_batches(split, 3, slice(0, 6), shuffle=True, generator=seeded())]
    labels = torch.cat(ys)
    assert sorted(labels.tolist()) == sorted(split.labels.tolist())
    assert not torch.equal(labels, torch.as_tensor(split.labels))  # shuffled
    again = [y for _, y in iterate_batches(split, 3, slice(0, 6), shuffle=True, generator=seeded())]
    assert torch.equal(labels, torch.cat(again))
    ((x, y),) = iterate_batches(split, 10, slice(0, 6), shuffle=True, generator=seeded(1))
    order = [
        int(np.flatnonzero((split.frames == x.transpose(0, 1)[i].numpy()).all((1, 2, 3, 4)))[0])
        for i in range(10)
    ]
    assert sorted(order) == list(range(10)) and torch.equal(y, torch.as_tensor(split.labels[order]))


def test_augmentation_changes_training_batches_never_evaluation_ones():
    split = make_split()
    raw = torch.from_numpy(split.frames.astype(np.float32)).transpose(0, 1)
    args = dict(shuffle=False, generator=seeded(5))
    ((ev_x, _),) = iterate_batches(split, 10, slice(0, 6), **args)  # augment defaults to "none"
    assert torch.equal(ev_x, raw)
    for kind in ("flip_roll", "nda"):
        ((tr_x, _),) = iterate_batches(split, 10, slice(0, 6), augment=kind, **args)
        assert not torch.equal(tr_x, raw)
    # one op per sample for all its frames: a split whose frames are equal stays so
    same = FrameSplit("s", np.repeat(split.frames[:, :1], 6, axis=1), split.labels)
    ((x, _),) = iterate_batches(
        same, 10, slice(0, 6), shuffle=False, augment="nda", generator=seeded(6)
    )
    assert torch.equal(x, x[:1].expand_as(x))


def test_loader_errors():
    split = make_split()
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(split, 0, slice(0, 2), shuffle=False))
    with pytest.raises(ValueError, match="slice"):
        next(iterate_batches(split, 2, 3, shuffle=False))
    with pytest.raises(ValueError, match="selects none"):
        next(iterate_batches(split, 2, slice(6, 9), shuffle=False))
    with pytest.raises(ValueError, match="unknown augmentation"):
        next(iterate_batches(split, 2, slice(0, 2), shuffle=False, augment="flip"))


def test_device_tensor_memoized():
    split = make_split()
    a = split.to_tensor(slice(0, 3), "cpu")
    assert split.to_tensor(slice(0, 3), "cpu") is a
    assert split.to_tensor(slice(1, 3), "cpu") is not a


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches():
    split = make_split()
    ((x, y),) = iterate_batches(
        split, 10, slice(0, 6), shuffle=True, device="cuda", augment="nda", generator=seeded()
    )
    assert x.is_cuda and y.is_cuda and x.shape == (6, 10, 2, 8, 8)


def test_roll_never_flips_so_mirror_gestures_keep_their_label():
    from hsd.data.augment import augment

    x = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.float32).view(1, 2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = augment(x, "roll", g)
        for n in range(2):  # each sample is a pure circular shift of itself, never mirrored
            shifts = [
                torch.roll(x[0, n, 0], (dy, dx), (0, 1))
                for dy in range(-5, 6)
                for dx in range(-5, 6)
            ]
            assert any(torch.equal(out[0, n, 0], s) for s in shifts)


def test_gesture_sets_are_never_flipped_by_default():
    from hsd.config import RunConfig
    from hsd.method import resolve

    for method in ("hsd", "sts", "tet", "sltt", "tcja"):
        paper = resolve(RunConfig(method=method, dataset="dvs-gesture", T=5, profile="paper"))
        assert paper.augment == "roll", method
        cifar = resolve(RunConfig(method=method, dataset="cifar10-dvs", T=5, profile="paper"))
        assert cifar.augment == "flip_roll", method
