//! TRANSPOSE: `output[i_0, .., i_{r-1}] = input[j]` with `j[perm[k]] = i_k`, i.e. output dimension
//! `k` is input dimension `perm[k]`.
//!
//! Pure data movement, so one byte-level kernel serves every fixed-size element type (int8,
//! int16, int32, float32, ...); quantization parameters pass through untouched, as in TFLite.
//! Ranks 0 to 6 (TFLite's reference supports 6, TFLM stops at 5). The permutation must be a
//! constant int32 tensor: the output shape is fixed when the interpreter is built.
//!
//! Also home of [`for_each_offset`], the row-major odometer MEAN reuses.

use crate::error::Result;
use crate::kernels::fast;
use crate::kernels::util::read_i32;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, MAX_RANK};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::TRANSPOSE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rank: u32,
    element_size: u32,
    /// Output dimensions.
    dims: [u32; MAX_RANK],
    /// For output dimension `k`: the input stride (in elements) of input dimension `perm[k]`.
    strides: [u32; MAX_RANK],
}

/// Calls `f(offset)` for every index of the box `dims`, in row-major order, with
/// `offset = sum_d index[d] * strides[d]`. Nothing is called when a dimension is 0; rank 0 calls
/// once with offset 0. `dims` and `strides` have the same length (at most [`MAX_RANK`]).
///
/// Visiting in row-major order matters beyond TRANSPOSE: MEAN sums floats in exactly the order
/// TFLite's reference visits them, which this order reproduces.
#[inline]
pub(crate) fn for_each_offset(dims: &[usize], strides: &[usize], mut f: impl FnMut(usize)) {
    let rank = dims.len().min(strides.len()).min(MAX_RANK);
    if dims[..rank].contains(&0) {
        return;
    }
    let Some(last) = rank.checked_sub(1) else {
        f(0);
        return;
    };
    let (inner_len, inner_stride) = (dims[last], strides[last]);
    // The two innermost dimensions as plain loops (the hot path): a small last dimension, like the
    // 3 channels of an NCHW -> NHWC image, then does not pay the odometer per row.
    let (outer, row_len, row_stride) = match last.checked_sub(1) {
        Some(second) => (second, dims[second], strides[second]),
        None => (0, 1, 0),
    };
    let mut index = [0usize; MAX_RANK];
    let mut base = 0usize;
    loop {
        let mut row = base;
        for _ in 0..row_len {
            let mut offset = row;
            for _ in 0..inner_len {
                f(offset);
                offset = offset.wrapping_add(inner_stride);
            }
            row = row.wrapping_add(row_stride);
        }
        // Carry into the outer dimensions like an odometer.
        let mut d = outer;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            base = base.wrapping_add(strides[d]);
            if index[d] < dims[d] {
                break;
            }
            base = base.wrapping_sub(dims[d].wrapping_mul(strides[d]));
            index[d] = 0;
        }
    }
}

/// Row-major strides (in elements) of `dims`.
pub(crate) fn row_major_strides(dims: &[usize]) -> [usize; MAX_RANK] {
    let mut strides = [0usize; MAX_RANK];
    let mut stride = 1usize;
    for d in (0..dims.len().min(MAX_RANK)).rev() {
        strides[d] = stride;
        stride = stride.saturating_mul(dims[d]);
    }
    strides
}

/// Element types TRANSPOSE moves: any fixed-size type of 1, 2, 4 or 8 bytes.
fn element_size(dtype: DataType) -> Option<usize> {
    match dtype {
        DataType::String | DataType::Resource | DataType::Variant | DataType::Int4 => None,
        _ => dtype.element_size().filter(|s| matches!(s, 1 | 2 | 4 | 8)),
    }
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 2, 1)?;
    let input = ctx.input(0)?;
    let perm = ctx.input(1)?;
    let output = ctx.output(0)?;
    ctx.ensure(!input.is_variable, reason!("input must not be a variable tensor"))?;
    ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
    let element_size = element_size(input.dtype).ok_or(ctx.invalid(reason!("unsupported tensor type for this op")))?;
    ctx.expect_type(perm, DataType::Int32)?;
    let perm_data = perm.data.ok_or(ctx.invalid(reason!("the permutation must be a constant tensor")))?;
    ctx.ensure(perm.shape.rank() <= 1, reason!("the permutation must be a vector"))?;
    let rank = input.shape.rank();
    ctx.ensure(perm.shape.elements() == rank, reason!("the permutation length differs from the input rank"))?;
    ctx.ensure(output.shape.rank() == rank, reason!("output rank differs from input rank"))?;
    ctx.ensure(input.shape.elements() <= u32::MAX as usize, reason!("tensor too large"))?;
    let in_strides = row_major_strides(input.shape.dims());
    let mut params =
        Params { rank: rank as u32, element_size: element_size as u32, dims: [0; MAX_RANK], strides: [0; MAX_RANK] };
    let mut seen = [false; MAX_RANK];
    for k in 0..rank {
        let p = read_i32(perm_data, k);
        let p = usize::try_from(p)
            .ok()
            .filter(|&p| p < rank)
            .ok_or(ctx.invalid(reason!("permutation entry out of range")))?;
        ctx.ensure(!seen[p], reason!("the permutation repeats a dimension"))?;
        seen[p] = true;
        ctx.ensure(output.shape.dim(k) == input.shape.dim(p), reason!("output shape is not the permuted input shape"))?;
        params.dims[k] = output.shape.dim(k) as u32;
        params.strides[k] = in_strides[p] as u32;
    }
    ctx.push(&params);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let rank = (p.rank as usize).min(MAX_RANK);
    let mut dims = [0usize; MAX_RANK];
    let mut strides = [0usize; MAX_RANK];
    for k in 0..rank {
        dims[k] = p.dims[k] as usize;
        strides[k] = p.strides[k] as usize;
    }
    let input = ctx.input(0);
    let output = ctx.output(0);
    transpose_bytes(input, output, &dims[..rank], &strides[..rank], p.element_size as usize);
    Ok(())
}

/// Writes `output` in row-major order, taking each element from `input` at the offset
/// [`for_each_offset`] gives for (`dims`, `strides`). Out-of-range offsets are skipped (prepare
/// rules them out).
fn transpose_bytes(input: &[u8], output: &mut [u8], dims: &[usize], strides: &[usize], element_size: usize) {
    if interleave_planes(input, output, dims, strides, element_size) {
        return;
    }
    fn run<const N: usize>(input: &[u8], output: &mut [u8], dims: &[usize], strides: &[usize]) {
        let mut chunks = output.chunks_exact_mut(N);
        for_each_offset(dims, strides, |offset| {
            let src = input.get(offset * N..offset * N + N);
            if let (Some(dst), Some(src)) = (chunks.next(), src) {
                dst.copy_from_slice(src);
            }
        });
    }
    match element_size {
        1 => {
            let mut out = output.iter_mut();
            for_each_offset(dims, strides, |offset| {
                if let (Some(dst), Some(&src)) = (out.next(), input.get(offset)) {
                    *dst = src;
                }
            });
        }
        2 => run::<2>(input, output, dims, strides),
        4 => run::<4>(input, output, dims, strides),
        8 => run::<8>(input, output, dims, strides),
        _ => {}
    }
}

/// Most elements of the innermost output dimension [`interleave_planes`] takes.
const MAX_INTERLEAVED: usize = 4;

/// The common case of a small dimension moving last (NCHW to NHWC: MobileNetV2's input, 3
/// channels): the innermost output dimension has 2 to [`MAX_INTERLEAVED`] elements and the next
/// one runs along the input's contiguous dimension, so each output row interleaves that many
/// contiguous input runs ("planes"). One tight loop per row, on slices checked once, instead of
/// a closure call and two bounds checks per element. `false` (nothing written) for other
/// permutations.
fn interleave_planes(input: &[u8], output: &mut [u8], dims: &[usize], strides: &[usize], element_size: usize) -> bool {
    let rank = dims.len().min(strides.len());
    let Some(outer) = rank.checked_sub(2) else { return false };
    let (row_len, plane_stride) = (dims[outer], strides[outer + 1]);
    let suits = strides[outer] == 1 && row_len > 0 && (2..=MAX_INTERLEAVED).contains(&dims[outer + 1]);
    if !suits {
        return false;
    }
    /// Element size `N`, `C` planes.
    fn rows<const N: usize, const C: usize>(
        input: &[u8],
        output: &mut [u8],
        (dims, strides): (&[usize], &[usize]),
        row_len: usize,
        plane_stride: usize,
    ) {
        let mut out_rows = output.chunks_exact_mut(row_len * C * N);
        for_each_offset(dims, strides, |base| {
            let plane = |c: usize| input.get((base + c * plane_stride) * N..).and_then(|p| p.get(..row_len * N));
            let planes: [Option<&[u8]>; C] = core::array::from_fn(plane);
            let Some(dst) = out_rows.next().filter(|_| planes.iter().all(Option::is_some)) else { return };
            let planes = planes.map(|p| p.unwrap_or(&[]));
            if N == 1 && fast::interleave_bytes(&planes, dst) {
                return;
            }
            let mut src = planes.map(|p| p.chunks_exact(N));
            for px in dst.chunks_exact_mut(C * N) {
                for (d, s) in px.chunks_exact_mut(N).zip(src.iter_mut()) {
                    if let Some(s) = s.next() {
                        d.copy_from_slice(s);
                    }
                }
            }
        });
    }
    fn by_planes<const N: usize>(
        input: &[u8],
        output: &mut [u8],
        outer: (&[usize], &[usize]),
        planes: usize,
        row_len: usize,
        plane_stride: usize,
    ) {
        match planes {
            2 => rows::<N, 2>(input, output, outer, row_len, plane_stride),
            3 => rows::<N, 3>(input, output, outer, row_len, plane_stride),
            _ => rows::<N, 4>(input, output, outer, row_len, plane_stride),
        }
    }
    let planes = dims[outer + 1];
    let outer_dims = (&dims[..outer], &strides[..outer]);
    match element_size {
        1 => by_planes::<1>(input, output, outer_dims, planes, row_len, plane_stride),
        2 => by_planes::<2>(input, output, outer_dims, planes, row_len, plane_stride),
        4 => by_planes::<4>(input, output, outer_dims, planes, row_len, plane_stride),
        8 => by_planes::<8>(input, output, outer_dims, planes, row_len, plane_stride),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    /// Transposes through the kernel's helpers.
    fn kernel_transpose(
        input: &[u8],
        in_dims: &[usize],
        perm: &[usize],
        element_size: usize,
    ) -> ([usize; MAX_RANK], Vec<u8>) {
        let in_strides = row_major_strides(in_dims);
        let mut dims = [0usize; MAX_RANK];
        let mut strides = [0usize; MAX_RANK];
        for (k, &p) in perm.iter().enumerate() {
            dims[k] = in_dims[p];
            strides[k] = in_strides[p];
        }
        let mut out = vec![0u8; input.len()];
        transpose_bytes(input, &mut out, &dims[..perm.len()], &strides[..perm.len()], element_size);
        (dims, out)
    }

    /// Independent check: decompose every *input* flat index by division, permute the index,
    /// and recompose the *output* flat index by Horner's rule.
    fn check(in_dims: &[usize], perm: &[usize], element_size: usize) {
        let n: usize = in_dims.iter().product();
        let input: Vec<u8> = (0..n * element_size).map(|i| (i * 7 + i / 251) as u8).collect();
        let (out_dims, out) = kernel_transpose(&input, in_dims, perm, element_size);
        let rank = in_dims.len();
        for flat in 0..n {
            let mut idx = vec![0usize; rank];
            let mut rest = flat;
            for d in (0..rank).rev() {
                idx[d] = rest % in_dims[d];
                rest /= in_dims[d];
            }
            let mut out_flat = 0;
            for k in 0..rank {
                out_flat = out_flat * out_dims[k] + idx[perm[k]];
            }
            assert_eq!(
                &out[out_flat * element_size..(out_flat + 1) * element_size],
                &input[flat * element_size..(flat + 1) * element_size],
                "dims {in_dims:?} perm {perm:?} element {flat}"
            );
        }
    }

    /// All permutations of 0..n (Heap's algorithm).
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k <= 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k {
                heap(k - 1, a, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                a.swap(j, k - 1);
            }
        }
        let mut out = Vec::new();
        heap(n, &mut (0..n).collect(), &mut out);
        out
    }

    #[test]
    fn every_permutation_up_to_rank_4_and_each_element_size() {
        let shapes: [&[usize]; 5] = [&[5], &[3, 4], &[2, 3, 4], &[2, 3, 1, 5], &[3, 1, 4, 2]];
        for dims in shapes {
            for perm in permutations(dims.len()) {
                for es in [1, 2, 4, 8] {
                    check(dims, &perm, es);
                }
            }
        }
    }

    #[test]
    fn ranks_5_and_6() {
        for perm in permutations(5).iter().step_by(7) {
            check(&[2, 3, 2, 1, 3], perm, 1);
            check(&[2, 3, 2, 1, 3], perm, 4);
        }
        for perm in permutations(6).iter().step_by(37) {
            check(&[2, 1, 3, 2, 2, 3], perm, 1);
            check(&[2, 1, 3, 2, 2, 3], perm, 2);
        }
    }

    #[test]
    fn small_dimensions_moved_last_interleave_whole_rows() {
        // Rows shorter and longer than a vector step (16), with tails; every element size.
        for planes in 2..=MAX_INTERLEAVED + 1 {
            for len in [1, 2, 15, 16, 17, 31, 33, 50, 224] {
                for es in [1, 2, 4, 8] {
                    check(&[2, planes, 3, len], &[0, 2, 3, 1], es);
                    check(&[planes, len], &[1, 0], es);
                    check(&[planes, 2, len], &[1, 2, 0], es);
                    check(&[3, planes, len, 2], &[3, 0, 2, 1], es);
                }
            }
        }
    }

    #[test]
    fn nchw_to_nhwc_like_mobilenet() {
        check(&[1, 3, 7, 9], &[0, 2, 3, 1], 1);
    }

    #[test]
    fn rank_0_and_empty() {
        let (_, out) = kernel_transpose(&[42], &[], &[], 1);
        assert_eq!(out, [42]);
        check(&[2, 0, 3], &[2, 0, 1], 4);
    }

    #[test]
    fn odometer_visits_row_major_with_strides() {
        let mut seen = Vec::new();
        for_each_offset(&[2, 3], &[10, 1], |o| seen.push(o));
        assert_eq!(seen, [0, 1, 2, 10, 11, 12]);
        seen.clear();
        for_each_offset(&[2, 2, 2], &[1, 100, 10], |o| seen.push(o));
        assert_eq!(seen, [0, 10, 100, 110, 1, 11, 101, 111]);
    }
}
