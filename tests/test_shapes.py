import pytest
import torch

from seqlib.shapes import expect_dtype, expect_shape


def test_binds_letters_and_checks_them_across_calls():
    sizes = expect_shape(torch.zeros(4, 16, 32), ("B", "N", 32), "x")
    assert sizes == {"B": 4, "N": 16}
    expect_shape(torch.zeros(4, 16), ("B", "N"), "mask", sizes)
    with pytest.raises(
        ValueError,
        match=r"mask: expected shape \(B, N\)=\(4, 16\), got \(4, 15\)",
    ):
        expect_shape(torch.zeros(4, 15), ("B", "N"), "mask", sizes)


def test_wrong_rank_and_wrong_size_name_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"x: expected shape \(B, N, D\) \(3 dims\), got \(4, 16\) \(2 dims\)",
    ):
        expect_shape(torch.zeros(4, 16), ("B", "N", "D"), "x")
    with pytest.raises(ValueError, match=r"axis 2 should be 32, is 31"):
        expect_shape(torch.zeros(4, 16, 31), ("B", None, 32), "x")


def test_not_a_tensor_and_dtype():
    with pytest.raises(ValueError, match="expected a torch.Tensor, got list"):
        expect_shape([1, 2], ("N",), "x")
    expect_dtype(torch.zeros(2, dtype=torch.long), torch.long, "ids")
    with pytest.raises(
        ValueError, match="ids: expected dtype torch.int64, got torch.float32"
    ):
        expect_dtype(torch.zeros(2), torch.long, "ids")
