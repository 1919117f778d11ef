//! RESHAPE: the same bytes under a new shape.
//!
//! The output tensor's shape in the model is the authority, as in TFLM: prepare checks it holds
//! as many elements (and bytes) as the input, and, where the target shape is known without
//! running anything, that the model agrees with it: the optional constant int32 shape input
//! (input 1), else `ReshapeOptions.new_shape`; one `-1` entry stands for whatever is left.
//!
//! The interpreter lets the output share the input's memory when the input is a planned
//! activation of the same length, and then skips eval. Otherwise (constant or variable input)
//! eval copies the bytes; [`prepare_copy`] and [`eval_copy`] also serve SQUEEZE.

use crate::error::Result;
use crate::kernels::util::read_i32;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, TensorMeta};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::RESHAPE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: true,
    prepare,
    eval: eval_copy,
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    /// 1 when input 0 is a variable tensor: its bytes are then the second mutable buffer.
    input_is_variable: u32,
}

/// Checks and records what a same-bytes op (RESHAPE, SQUEEZE) needs: input 0 and output 0 of
/// one fixed-size type with equal element counts.
pub(crate) fn prepare_copy(
    ctx: &mut PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
) -> Result<()> {
    // Same type and element count give the same byte size: verification refused types without
    // an element size.
    ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
    ctx.ensure(
        input.shape.elements() == output.shape.elements(),
        reason!("output element count differs from the input's"),
    )?;
    ctx.push(&CopyParams { input_is_variable: input.is_variable as u32 });
    Ok(())
}

/// Copies input 0 to output 0 (only runs when the interpreter could not alias them).
pub(crate) fn eval_copy(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: CopyParams = ctx.params().read();
    let input = ctx.input(0);
    if p.input_is_variable != 0 {
        if let [output, state, ..] = ctx.mutables() {
            copy_prefix(output, state);
        }
    } else {
        copy_prefix(ctx.output(0), input);
    }
    Ok(())
}

fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    // A loop rather than `copy_from_slice`, whose length check links a panic.
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

/// Whether `target` (little-endian `i32` entries, each >= 0 or a single -1 wildcard) describes
/// `dims`. Takes bytes so the shape tensor and the `new_shape` option share one copy.
fn shape_matches(target: &[u8], dims: &[usize]) -> bool {
    if target.len() != 4 * dims.len() {
        return false;
    }
    let mut wildcards = 0;
    for (i, &d) in dims.iter().enumerate() {
        let t = read_i32(target, i);
        if t == -1 {
            wildcards += 1;
        } else if usize::try_from(t).ok() != Some(d) {
            return false;
        }
    }
    wildcards <= 1
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 2, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let shape = ctx.optional_input(1)?;
    let dims = output.shape.dims();
    match shape {
        // LiteRT reads the target from a 1-D int32 shape tensor; we can when it is constant.
        Some(s) if s.dtype == DataType::Int32 && s.shape.rank() == 1 => {
            if let Some(data) = s.data {
                ctx.ensure(shape_matches(data, dims), reason!("output shape differs from the shape input"))?;
            }
        }
        Some(_) => {}
        None => {
            let options = ctx.builtin_options(options_type::RESHAPE)?;
            if let Some(new_shape) = options.map(|t| t.vector::<i32>(0)).transpose()?.flatten() {
                // An empty new_shape is how old converters said "unknown": nothing to check.
                if !new_shape.is_empty() {
                    ctx.ensure(
                        shape_matches(new_shape.as_bytes(), dims),
                        reason!("output shape differs from new_shape"),
                    )?;
                }
            }
        }
    }
    prepare_copy(ctx, input, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le<const N: usize>(values: [i32; N]) -> [[u8; 4]; N] {
        values.map(i32::to_le_bytes)
    }

    #[test]
    fn target_shapes() {
        assert!(shape_matches(le([-1, 49, 40, 1]).as_flattened(), &[1, 49, 40, 1]));
        assert!(shape_matches(le([1, 1280]).as_flattened(), &[1, 1280]));
        assert!(shape_matches(le([]).as_flattened(), &[]));
        assert!(!shape_matches(le([-1, -1]).as_flattened(), &[1, 1280]));
        assert!(!shape_matches(le([1280]).as_flattened(), &[1, 1280]));
        assert!(!shape_matches(le([2, 640]).as_flattened(), &[1, 1280]));
        assert!(!shape_matches(le([-2, 1280]).as_flattened(), &[1, 1280]));
    }

    #[test]
    fn copy_stops_at_the_shorter_buffer() {
        let mut out = [0u8; 3];
        copy_prefix(&mut out, &[1, 2, 3, 4]);
        assert_eq!(out, [1, 2, 3]);
    }
}
