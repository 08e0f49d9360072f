"""actormimic_fast.ops.masked_softmax_xent against the plain PyTorch reference, on every device present.

Ground truth is the reference run in float64 on the same (already rounded) inputs. An output passes when
its error is within a tolerance of its dtype (relative to the output's scale), or, for 32- and 16-bit
dtypes, at most 2x the error of the reference computed in that same precision (the house numerics rule;
it is what bounds float16/bfloat16, and float32 where the problem itself is ill-conditioned, e.g. the
teacher gradient at tau = 0.01).
"""

from __future__ import annotations

import pytest
import torch

from actormimic_fast.native import ops
from actormimic_fast.reference.masked_softmax_xent import masked_softmax_xent as reference

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda,
                                              pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")])]
A = 18
LEGAL_COUNTS = (3, 18, 1, 7)  # 3 and 18 legal actions in one batch, and a single legal action
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 0.0, torch.bfloat16: 0.0}
OP = torch.ops.actormimic_fast.masked_softmax_xent.default
BACKWARD_OP = torch.ops.actormimic_fast.masked_softmax_xent_backward.default
AND_GRAD_OP = torch.ops.actormimic_fast.masked_softmax_xent_and_grad.default
SCALE_GRAD_OP = torch.ops.actormimic_fast.masked_softmax_xent_scale_grad.default


def random_masks(count: int, actions: int, generator: torch.Generator) -> torch.Tensor:
    """[count, actions] bool, row i with LEGAL_COUNTS[i % 4] legal actions at random positions."""
    masks = torch.zeros(count, actions, dtype=torch.bool)
    for i in range(count):
        legal = min(LEGAL_COUNTS[i % len(LEGAL_COUNTS)], actions)
        masks[i, torch.randperm(actions, generator=generator)[:legal]] = True
    return masks


def make_inputs(device, dtype=torch.float32, rows=40, actions=A, scale=3.0, form="rows",
                game_id_dtype=torch.int64, seed=0):
    """(student_logits, teacher_q, action_mask, game_id) with a mix of legal-action counts."""
    g = torch.Generator().manual_seed(seed)
    student = (torch.randn(rows, actions, generator=g, dtype=torch.float64) * scale).to(dtype)
    teacher = (torch.randn(rows, actions, generator=g, dtype=torch.float64) * scale).to(dtype)
    if form == "rows":
        mask, game_id = random_masks(rows, actions, g), None
    else:
        mask = random_masks(len(LEGAL_COUNTS), actions, g)
        game_id = torch.randint(0, len(LEGAL_COUNTS), (rows,), generator=g).to(game_id_dtype).to(device)
    return student.to(device), teacher.to(device), mask.to(device), game_id


def op_and_grads(student, teacher, mask, game_id, tau, weights):
    s = student.detach().clone().requires_grad_()
    t = teacher.detach().clone().requires_grad_()
    loss = ops.masked_softmax_xent(s, t, mask, tau, game_id=game_id)
    grad_s, grad_t = torch.autograd.grad((loss * weights.to(loss.dtype)).sum(), (s, t))
    return loss.detach(), grad_s, grad_t


def reference_and_grads(student, teacher, mask, game_id, tau, weights, dtype):
    s = student.detach().to(dtype).requires_grad_()
    t = teacher.detach().to(dtype).requires_grad_()
    loss = reference(s, t, mask, tau, game_id)
    grad_s, grad_t = torch.autograd.grad((loss * weights.to(dtype)).sum(), (s, t))
    return loss.detach(), grad_s, grad_t


def max_error(value, truth):
    return (value.double() - truth).abs().max().item()


def check_against_reference(student, teacher, mask, game_id, tau):
    dtype = student.dtype
    weights = torch.randn(student.shape[0], generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64).to(student.device)
    got = op_and_grads(student, teacher, mask, game_id, tau, weights)
    truth = reference_and_grads(student, teacher, mask, game_id, tau, weights, torch.float64)
    assert got[0].dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert got[1].dtype == dtype and got[2].dtype == dtype
    names = ("loss", "grad student_logits", "grad teacher_q")
    same_precision = (None,) * 3 if dtype == torch.float64 else reference_and_grads(
        student, teacher, mask, game_id, tau, weights, dtype)
    for name, value, low, exact in zip(names, got, same_precision, truth):
        assert torch.isfinite(value).all(), name
        op_error = max_error(value, exact)
        bound = TOLERANCE[dtype] * (1 + exact.abs().max().item()) if exact.numel() else 0.0
        if low is not None:
            bound = max(bound, 2 * max_error(low, exact))
        assert op_error <= bound, f"{name}: {dtype} error {op_error:.3g} > bound {bound:.3g}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("form", ["rows", "table"])
def test_forward_and_backward_match_reference(device, dtype, form):
    check_against_reference(*make_inputs(device, dtype, rows=203, form=form), tau=1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("game_id_dtype", [torch.int32, torch.int64])
def test_game_id_int32_and_int64(device, game_id_dtype):
    check_against_reference(*make_inputs(device, form="table", game_id_dtype=game_id_dtype), tau=1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tau", [0.01, 1.0, 10.0])
def test_temperatures(device, tau):
    check_against_reference(*make_inputs(device, form="table"), tau=tau)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("actions", [1, 5, 8, 9, 31, 32])
def test_action_counts_up_to_32(device, actions):
    check_against_reference(*make_inputs(device, actions=actions), tau=0.7)


@pytest.mark.parametrize("device", DEVICES)
def test_three_and_eighteen_legal_actions_in_one_batch(device):
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(2, A, dtype=torch.bool)
    mask[0, [2, 7, 11]] = True
    mask[1] = True
    student = torch.randn(6, A, generator=g) * 4
    teacher = torch.randn(6, A, generator=g) * 4
    game_id = torch.tensor([0, 1, 1, 0, 1, 0])
    inputs = (student.to(device), teacher.to(device), mask.to(device), game_id.to(device))
    check_against_reference(*inputs, tau=1.0)
    loss = ops.masked_softmax_xent(*inputs[:3], game_id=inputs[3])
    # Row 0 by hand: softmaxes over actions {2, 7, 11} only.
    legal = [2, 7, 11]
    q = torch.softmax(teacher[0, legal].double(), 0)
    expected = -(q * torch.log_softmax(student[0, legal].double(), 0)).sum()
    assert abs(loss[0].item() - expected.item()) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_one_legal_action_gives_zero_loss_and_gradient(device):
    mask = torch.zeros(4, A, dtype=torch.bool, device=device)
    mask[torch.arange(4), torch.tensor([0, 5, 17, 9])] = True
    student = (torch.randn(4, A, device=device) * 100).requires_grad_()
    teacher = torch.randn(4, A, device=device) * 100
    loss = ops.masked_softmax_xent(student, teacher, mask)
    loss.sum().backward()
    assert torch.equal(loss, torch.zeros_like(loss))
    assert torch.equal(student.grad, torch.zeros_like(student.grad))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    student = torch.zeros(0, A, device=device, requires_grad=True)
    teacher = torch.zeros(0, A, device=device, requires_grad=True)
    loss = ops.masked_softmax_xent(student, teacher, torch.zeros(0, A, dtype=torch.bool, device=device))
    assert loss.shape == (0,) and loss.dtype == torch.float32
    loss.sum().backward()
    assert student.grad.shape == (0, A) and teacher.grad.shape == (0, A)
    table = torch.ones(3, A, dtype=torch.bool, device=device)
    empty_ids = torch.zeros(0, dtype=torch.int64, device=device)
    assert ops.masked_softmax_xent(student, teacher, table, game_id=empty_ids).shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_logits_stay_finite(device, dtype):
    student, teacher, mask, game_id = make_inputs(device, torch.float64, form="table")
    signs = torch.where(torch.rand(student.shape, generator=torch.Generator().manual_seed(2)) < 0.5, -1.0, 1.0)
    student = (signs.to(device) * 1e4 + student).to(dtype)
    teacher = (1e4 - teacher).to(dtype)
    loss, grad_s, grad_t = op_and_grads(student, teacher, mask, game_id, 1.0, torch.ones(len(student), device=device))
    assert torch.isfinite(loss).all() and torch.isfinite(grad_s).all() and torch.isfinite(grad_t).all()
    check_against_reference(student, teacher, mask, game_id, tau=1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_garbage_at_masked_positions_is_ignored(device):
    student, teacher, mask, _ = make_inputs(device, rows=64)
    garbage = torch.tensor([float("nan"), float("inf"), -float("inf"), 3e38], device=device)
    fill = garbage[torch.arange(student.numel(), device=device) % 4].view_as(student)
    dirty_teacher = torch.where(mask, teacher, fill)
    dirty_student = torch.where(mask, student, fill)
    clean = op_and_grads(student, teacher, mask, None, 0.5, torch.ones(64, device=device))
    dirty = op_and_grads(dirty_student, dirty_teacher, mask, None, 0.5, torch.ones(64, device=device))
    for c, d in zip(clean, dirty):
        assert torch.isfinite(d).all()
        torch.testing.assert_close(d, c, rtol=0, atol=0)
    assert (dirty[1][~mask] == 0).all() and (dirty[2][~mask] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    student, teacher, mask, _ = make_inputs(device, rows=50)
    table_student, table_teacher, table, game_id = make_inputs(device, rows=100, form="table")
    expected = op_and_grads(student, teacher, mask, None, 1.0, torch.ones(50, device=device))
    transposed_student = student.t().contiguous().t()          # column stride != 1: copied
    wide_teacher = torch.cat([teacher, torch.full_like(teacher, float("nan"))], 1)[:, :A]  # row stride 2A
    strided_mask = torch.cat([mask, ~mask], 1)[:, :A]
    assert not transposed_student.is_contiguous() and not wide_teacher.is_contiguous()
    got = op_and_grads(transposed_student, wide_teacher, strided_mask, None, 1.0, torch.ones(50, device=device))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    # Every second row, with every second game id.
    rows = slice(None, None, 2)
    expected = op_and_grads(table_student[rows].contiguous(), table_teacher[rows].contiguous(), table,
                            game_id[rows].contiguous(), 1.0, torch.ones(50, device=device))
    got = op_and_grads(table_student[rows], table_teacher[rows], table, game_id[rows], 1.0,
                       torch.ones(50, device=device))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_reductions(device):
    student, teacher, mask, game_id = make_inputs(device, form="table")
    per_row = reference(student.double(), teacher.double(), mask, 2.0, game_id)
    for reduction, expected in (("none", per_row), ("mean", per_row.mean()), ("sum", per_row.sum())):
        got = ops.masked_softmax_xent(student, teacher, mask, 2.0, game_id=game_id, reduction=reduction)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    s = student.clone().requires_grad_()
    ops.masked_softmax_xent(s, teacher, mask, game_id=game_id, reduction="mean").backward()  # expanded grad
    s64 = student.double().requires_grad_()
    reference(s64, teacher.double(), mask, 1.0, game_id).mean().backward()
    torch.testing.assert_close(s.grad.double(), s64.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("teacher_grad", [False, True])
def test_reduction_inside_the_op_matches_reducing_per_row_losses(device, reduction, teacher_grad):
    """The op reduces in its own autograd node; both backward paths (saved p - q when only student_logits
    needs a gradient, recomputation when teacher_q does too) must match reducing the per-row loss."""
    student, teacher, mask, game_id = make_inputs(device, form="table")
    s, t = student.clone().requires_grad_(), teacher.clone().requires_grad_(teacher_grad)
    got = ops.masked_softmax_xent(s, t, mask, 0.5, game_id=game_id, reduction=reduction)
    s64, t64 = student.double().requires_grad_(), teacher.double().requires_grad_(teacher_grad)
    per_row = reference(s64, t64, mask, 0.5, game_id)
    expected = per_row.mean() if reduction == "mean" else per_row.sum()
    assert got.shape == () and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    got.backward()
    expected.backward()
    torch.testing.assert_close(s.grad.double(), s64.grad, rtol=1e-5, atol=1e-6)
    if teacher_grad:
        torch.testing.assert_close(t.grad.double(), t64.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", ["rows", "table"])
def test_gradcheck_float64(device, form):
    student, teacher, mask, game_id = make_inputs(device, torch.float64, rows=8, actions=6, scale=1.0, form=form)
    student.requires_grad_()
    teacher.requires_grad_()
    assert torch.autograd.gradcheck(lambda s, t: OP(s, t, mask, game_id, 0.7), (student, teacher))
    assert torch.autograd.gradcheck(lambda s: OP(s, teacher.detach(), mask, game_id, 0.7), (student,))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    student, teacher, mask, _ = make_inputs(device, rows=12)
    table_student, table_teacher, table, game_id = make_inputs(device, torch.float16, rows=12, form="table")
    samples = [
        (student, teacher, mask, None, 1.0),
        (student.clone().requires_grad_(), teacher, mask, None, 0.5),
        (student.clone().requires_grad_(), teacher.clone().requires_grad_(), mask, None, 2.0),
        (table_student.clone().requires_grad_(), table_teacher, table, game_id, 1.0),
        (table_student, table_teacher, table, game_id.int(), 1.0),
    ]
    for args in samples:
        torch.library.opcheck(OP, args)
        torch.library.opcheck(OP, (*args, "none", True))  # check mode
    for reduction in ("mean", "sum"):
        torch.library.opcheck(OP, (student.clone().requires_grad_(), teacher, mask, None, 1.0, reduction))
        torch.library.opcheck(OP, (table_student, table_teacher.clone().requires_grad_(), table, game_id, 1.0,
                                   reduction))
    for reduction in ("none", "mean"):
        torch.library.opcheck(AND_GRAD_OP, (student, teacher, mask, None, 1.0, reduction))
        torch.library.opcheck(AND_GRAD_OP, (student, teacher, mask, None, 1.0, reduction, True))
    dloss_dlogits = torch.randn(12, A, device=device)
    torch.library.opcheck(SCALE_GRAD_OP, (dloss_dlogits, torch.randn(12, device=device), "none", torch.float16))
    torch.library.opcheck(SCALE_GRAD_OP, (dloss_dlogits, torch.randn((), device=device), "mean", torch.float32))
    grad_loss = torch.randn(12, device=device)
    torch.library.opcheck(BACKWARD_OP, (grad_loss, student, teacher, mask, None, 1.0, True))
    torch.library.opcheck(BACKWARD_OP, (grad_loss, student, teacher, mask, None, 1.0, False))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_traces_the_op(device):
    student, teacher, mask, game_id = make_inputs(device, form="table")

    def loss_fn(s, t, m, ids):
        return ops.masked_softmax_xent(s, t, m, 0.5, game_id=ids, reduction="mean")

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager", dynamic=True)
    for rows in (40, 17):  # a second batch size: the graph is shape-generic
        s_eager = student[:rows].clone().requires_grad_()
        s_compiled = student[:rows].clone().requires_grad_()
        expected = loss_fn(s_eager, teacher[:rows], mask, game_id[:rows])
        got = compiled(s_compiled, teacher[:rows], mask, game_id[:rows])
        expected.backward()
        got.backward()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(s_compiled.grad, s_eager.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_teacher_gradient_only_when_needed(device):
    student, teacher, mask, _ = make_inputs(device)
    s = student.clone().requires_grad_()
    ops.masked_softmax_xent(s, teacher, mask).sum().backward()
    grad_s, grad_t = BACKWARD_OP(torch.ones(len(student), device=device), student, teacher, mask, None, 1.0, False)
    assert grad_t.numel() == 0
    torch.testing.assert_close(grad_s, s.grad, rtol=0, atol=0)


def test_cpu_result_independent_of_thread_count():
    student, teacher, mask, game_id = make_inputs("cpu", rows=5000, form="table")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = op_and_grads(student, teacher, mask, game_id, 1.0, torch.ones(5000))
        torch.set_num_threads(2)
        two = op_and_grads(student, teacher, mask, game_id, 1.0, torch.ones(5000))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_graph_capture_of_forward_and_backward():
    """No host read-back by default: forward and backward capture in a CUDA graph, and a row without a legal
    action is NaN there as everywhere; check=True refuses capture instead of skipping its check."""
    student, teacher, mask, game_id = make_inputs("cuda", form="table")
    mask = mask.clone()
    mask[3] = False
    game_id[5] = 3
    student = student.clone().requires_grad_()
    expected = ops.masked_softmax_xent(student, teacher, mask, game_id=game_id, check=False)
    (expected_grad,) = torch.autograd.grad(expected.nan_to_num().sum(), student)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        ops.masked_softmax_xent(student, teacher, mask, game_id=game_id, check=False)  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = ops.masked_softmax_xent(student, teacher, mask, game_id=game_id, check=False)
        (captured_grad,) = torch.autograd.grad(captured.nan_to_num().sum(), student)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(captured, expected, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(captured_grad, expected_grad, rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(captured[5]).all() and torch.isnan(captured[game_id == 3]).all()
    with pytest.raises(RuntimeError, match=r"check=True reads the row status back to the host, which is impossible"):
        with torch.cuda.graph(torch.cuda.CUDAGraph()):
            ops.masked_softmax_xent(student.detach(), teacher, mask, game_id=game_id, check=True)


# ---- documented errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_row_without_legal_action_is_nan_or_raises_in_check_mode(device):
    """check=False: no check, so a row without a legal action gets a NaN loss and NaN
    gradients (the other rows are untouched); check=True raises ValueError naming the row instead."""
    student, teacher, mask, _ = make_inputs(device, rows=10)
    mask = mask.clone()
    mask[6] = False
    with pytest.raises(ValueError, match=r"row 6 has no legal action: action_mask\[6\] is all False"):
        ops.masked_softmax_xent(student, teacher, mask, check=True)
    s = student.clone().requires_grad_()
    t = teacher.clone().requires_grad_()
    loss = ops.masked_softmax_xent(s, t, mask, check=False)
    loss.nan_to_num().sum().backward()
    assert torch.isnan(loss[6]) and torch.isfinite(loss[torch.arange(10, device=device) != 6]).all()
    assert torch.isnan(s.grad[6]).all() and torch.isnan(t.grad[6]).all()
    assert torch.isfinite(s.grad[:6]).all() and torch.isfinite(s.grad[7:]).all()
    for reduction in ("mean", "sum"):
        assert torch.isnan(ops.masked_softmax_xent(student, teacher, mask, reduction=reduction, check=False))
    table = torch.ones(3, A, dtype=torch.bool, device=device)
    table[2] = False
    game_id = torch.tensor([0, 1, 0, 2, 2], device=device)
    with pytest.raises(ValueError, match=r"row 3 has no legal action: its game, game_id\[3\] = 2"):
        ops.masked_softmax_xent(student[:5], teacher[:5], table, game_id=game_id, check=True)
    loss = ops.masked_softmax_xent(student[:5], teacher[:5], table, game_id=game_id, check=False)
    assert torch.isnan(loss[3:]).all() and torch.isfinite(loss[:3]).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad", [3, -1])
def test_game_id_out_of_range_is_nan_or_raises_index_error_in_check_mode(device, bad):
    student, teacher, _, _ = make_inputs(device, rows=5)
    table = torch.ones(3, A, dtype=torch.bool, device=device)
    game_id = torch.tensor([0, 1, bad, 2, bad], device=device)
    with pytest.raises(IndexError, match=rf"game_id\[2\] = {bad} is out of range for an action_mask table of 3"):
        ops.masked_softmax_xent(student, teacher, table, game_id=game_id, check=True)
    s = student.clone().requires_grad_()
    loss = ops.masked_softmax_xent(s, teacher, table, game_id=game_id, check=False)
    loss.nan_to_num().sum().backward()
    assert torch.isnan(loss[[2, 4]]).all() and torch.isfinite(loss[[0, 1, 3]]).all()
    assert torch.isnan(s.grad[[2, 4]]).all() and torch.isfinite(s.grad[[0, 1, 3]]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_check_mode_gives_the_same_result_on_valid_rows(device):
    student, teacher, mask, game_id = make_inputs(device, form="table")
    for reduction in ("none", "mean"):
        for teacher_grad in (False, True):
            got = op_and_grads(student, teacher, mask, game_id, 0.5, torch.ones(len(student), device=device))
            s = student.clone().requires_grad_()
            t = teacher.clone().requires_grad_(teacher_grad)
            checked = ops.masked_softmax_xent(s, t, mask, 0.5, game_id=game_id, check=True)
            checked.sum().backward()
            torch.testing.assert_close(checked, got[0], rtol=0, atol=0)
            torch.testing.assert_close(s.grad, got[1], rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_shape_errors(device):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    table = torch.ones(3, A, dtype=torch.bool, device=device)
    ids = torch.zeros(4, dtype=torch.int64, device=device)
    cases = [
        ((student[0], teacher[0], mask[0]), {}, r"student_logits must be 2-D \[B, A\], got shape \[18\]"),
        ((torch.zeros(4, 33, device=device),) * 2 + (torch.ones(4, 33, dtype=torch.bool, device=device),), {},
         r"1 to 32 actions \(columns\), got shape \[4, 33\]"),
        ((torch.zeros(4, 0, device=device),) * 2 + (torch.ones(4, 0, dtype=torch.bool, device=device),), {},
         r"1 to 32 actions"),
        ((student, teacher[:3], mask), {}, r"teacher_q must have the shape of student_logits \[4, 18\], got \[3, 18\]"),
        ((student, teacher, mask[:, :17]), {}, r"action_mask must have the shape of student_logits \[4, 18\] when "
                                               r"game_id is None, got \[4, 17\]"),
        ((student, teacher, table[:, :5]), {"game_id": ids},
         r"action_mask must be a per-game table \[G, A\] with A = 18 when game_id is given, got shape \[3, 5\]"),
        ((student, teacher, table), {"game_id": ids[:3]}, r"game_id must have shape \[B\] = \[4\], got \[3\]"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ops.masked_softmax_xent(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_errors(device):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    table = torch.ones(3, A, dtype=torch.bool, device=device)
    cases = [
        ((student.long(), teacher.long(), mask), {}, r"student_logits must be float32, float16, bfloat16 or "
                                                     r"float64, got Long"),
        ((student, teacher.half(), mask), {}, r"teacher_q must have the dtype of student_logits \(Float\), got Half"),
        ((student, teacher, mask.to(torch.uint8)), {}, r"action_mask must be bool, got Byte"),
        ((student, teacher, table), {"game_id": torch.zeros(4, device=device)},
         r"game_id must be int32 or int64, got Float"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(TypeError, match=message):
            ops.masked_softmax_xent(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf"), 1e-300, 1e39])
def test_bad_tau_raises_value_error(device, tau):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    with pytest.raises(ValueError, match=r"tau must be a positive finite number in \[.*\] \(a normal float32, so "
                                         r"that 1/tau is finite\), got"):
        ops.masked_softmax_xent(student, teacher, mask, tau)
    with pytest.raises(ValueError, match=r"tau must be a positive finite number in"):
        OP(student, teacher, mask, None, tau)


def test_bad_reduction_raises_value_error():
    student, teacher, mask, _ = make_inputs("cpu", rows=4)
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        ops.masked_softmax_xent(student, teacher, mask, reduction="avg")


@pytest.mark.parametrize("device", DEVICES)
def test_op_called_directly_checks_reduction(device):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        OP(student, teacher, mask, None, 1.0, "avg")
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        OP(student.clone().requires_grad_(), teacher, mask, None, 1.0, "avg")


@pytest.mark.parametrize("device", DEVICES)
def test_backward_op_checks_grad_loss(device):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    with pytest.raises(TypeError, match=r"grad_loss must be Float \(the loss dtype\), got Double"):
        BACKWARD_OP(torch.ones(4, dtype=torch.float64, device=device), student, teacher, mask, None, 1.0, False)
    with pytest.raises(ValueError, match=r"grad_loss must have shape \[B\] = \[4\], got \[5\]"):
        BACKWARD_OP(torch.ones(5, device=device), student, teacher, mask, None, 1.0, False)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_op_called_directly_gives_nan_for_invalid_rows(device):
    student, teacher, mask, _ = make_inputs(device, rows=4)
    mask = mask.clone()
    mask[1] = False
    grad_s, grad_t = BACKWARD_OP(torch.ones(4, device=device), student, teacher, mask, None, 1.0, True)
    assert torch.isnan(grad_s[1]).all() and torch.isnan(grad_t[1]).all()
    assert torch.isfinite(grad_s[[0, 2, 3]]).all()


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_mixed_devices_raise_value_error():
    student, teacher, mask, _ = make_inputs("cuda", rows=4)
    with pytest.raises(ValueError, match=r"action_mask is on cpu but student_logits is on cuda:0"):
        ops.masked_softmax_xent(student, teacher, mask.cpu())
    table = torch.ones(3, A, dtype=torch.bool, device="cuda")
    with pytest.raises(ValueError, match=r"game_id is on cpu but student_logits is on cuda:0"):
        ops.masked_softmax_xent(student, teacher, table, game_id=torch.zeros(4, dtype=torch.int64))
