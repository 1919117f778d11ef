//! QUANTIZE (not implemented yet).

use crate::error::Result;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::QUANTIZE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    Err(ctx.invalid("not implemented yet"))
}

fn eval(_ctx: &mut EvalContext<'_>) -> Result<()> {
    Ok(())
}
