//! SQUEEZE: drops size-1 dimensions; the bytes do not change.
//!
//! `SqueezeOptions.squeeze_dims` names the dimensions to drop (negative counts from the end;
//! each must have size 1, as LiteRT requires); empty means every size-1 dimension. Prepare checks
//! the model's output shape is exactly the squeezed input shape. Eval is a copy, skipped when the
//! interpreter aliases the output to the input (see [`reshape`](super::reshape)).

use crate::error::Result;
use crate::kernels::concatenation::resolve_axis;
use crate::kernels::reshape::{eval_copy, prepare_copy};
use crate::kernels::{known_max_version, PrepareContext, Registration};
use crate::tensor::MAX_RANK;
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::SQUEEZE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: true,
    prepare,
    eval: eval_copy,
};

/// The input dimensions left after squeezing, or `None` if a listed dimension is out of range
/// or not of size 1. `squeeze_dims` empty squeezes every size-1 dimension.
fn squeezed(dims: &[usize], squeeze_dims: impl Iterator<Item = i32>) -> Option<([usize; MAX_RANK], usize)> {
    let rank = dims.len();
    let mut drop = [false; MAX_RANK];
    let mut any = false;
    for d in squeeze_dims {
        any = true;
        let d = resolve_axis(d, rank)?;
        if dims[d] != 1 {
            return None;
        }
        drop[d] = true;
    }
    if !any {
        for (flag, &d) in drop.iter_mut().zip(dims) {
            *flag = d == 1;
        }
    }
    let mut out = [0usize; MAX_RANK];
    let mut len = 0;
    for (&d, _) in dims.iter().zip(drop).filter(|(_, dropped)| !dropped) {
        out[len] = d;
        len += 1;
    }
    Some((out, len))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let options = ctx.builtin_options(options_type::SQUEEZE)?;
    let squeeze_dims = options.map(|t| t.vector::<i32>(0)).transpose()?.flatten();
    let expected = squeezed(input.shape.dims(), squeeze_dims.iter().flat_map(|v| v.iter()));
    let (dims, len) = expected.ok_or(ctx.invalid(reason!("a squeezed dimension is out of range or not of size 1")))?;
    ctx.ensure(output.shape.dims() == &dims[..len], reason!("output shape is not the squeezed input shape"))?;
    prepare_copy(ctx, input, output)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    fn sq(dims: &[usize], squeeze: &[i32]) -> Option<Vec<usize>> {
        squeezed(dims, squeeze.iter().copied()).map(|(d, n)| d[..n].to_vec())
    }

    #[test]
    fn squeeze_dims() {
        assert_eq!(sq(&[1, 1, 1, 64], &[]), Some(vec![64]));
        assert_eq!(sq(&[1, 1, 1, 64], &[1, 2]), Some(vec![1, 64]));
        assert_eq!(sq(&[1, 1, 1, 64], &[-3, -2, -3]), Some(vec![1, 64]));
        assert_eq!(sq(&[1, 3, 1, 64], &[1]), None);
        assert_eq!(sq(&[1, 3], &[2]), None);
        assert_eq!(sq(&[1, 3], &[-3]), None);
        assert_eq!(sq(&[], &[]), Some(vec![]));
        assert_eq!(sq(&[1], &[]), Some(vec![]));
    }
}
