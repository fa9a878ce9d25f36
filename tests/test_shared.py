"""The shared helpers: one prefetcher, one set of shape/spacing validators."""

import threading
import time

import pytest

from medzoo._checks import positive_ints, positive_mm
from medzoo._prefetch import prefetched


def test_prefetched_keeps_order_and_bounds_the_work_in_flight():
    started, lock = [], threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.01 * (5 - i % 5))  # later items finish first
        return i * i

    stream = prefetched(work, ((i,) for i in range(20)), workers=4, ahead=3)
    assert next(stream) == 0
    assert len(started) <= 3  # nothing beyond `ahead` was submitted before the first result
    assert list(stream) == [i * i for i in range(1, 20)]


def test_prefetched_raises_the_error_of_the_item_that_failed():
    def work(i: int) -> int:
        if i == 2:
            raise ValueError("item 2 is bad")
        return i

    stream = prefetched(work, ((i,) for i in range(5)), workers=2, ahead=2)
    assert [next(stream), next(stream)] == [0, 1]
    with pytest.raises(ValueError, match="item 2 is bad"):
        next(stream)


@pytest.mark.parametrize("bad", [(1, 2), (0, 4, 4), (2.5, 4, 4), "abc", 7, (4, 4, -1)])
def test_positive_ints_names_the_argument_and_the_axes(bad):
    with pytest.raises(ValueError, match=r"^patch_shape must be 3 positive integers \(z, y, x\)"):
        positive_ints(bad, "patch_shape")


def test_positive_ints_accepts_whole_floats_and_returns_ints():
    assert positive_ints([2.0, 3, 4], "shape") == (2, 3, 4)
    assert all(type(v) is int for v in positive_ints((2.0, 3, 4), "shape"))


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, float("nan"), 1.0), None])
def test_positive_mm_rejects_what_is_not_a_spacing(bad):
    with pytest.raises(
        ValueError, match=r"^spacing_mm must be 3 positive numbers \(x, y, z\) in mm"
    ):
        positive_mm(bad, "spacing_mm")
    assert positive_mm((1, 2.5, 3), "spacing_mm") == (1.0, 2.5, 3.0)
