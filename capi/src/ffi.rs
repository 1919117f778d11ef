//! The `extern "C"` entry points: the only place with `unsafe` code. Each function checks its
//! pointers, turns them into references or slices (the caller's promises are listed under
//! "Safety"), and hands over to the safe logic in the crate root under [`guard`].
//!
//! Lifetime rules the C caller must keep (also in the header):
//! - the model buffer stays valid and unchanged until every model and interpreter made from it
//!   is deleted (the model handle itself may be deleted before its interpreters);
//! - the arena stays valid, is not touched by the caller, and does not overlap the model buffer
//!   until its interpreter is deleted.
//!
//! Threads: models are read-only and may be shared between threads; an interpreter must not be
//! used by two threads at once; `ferrolite_last_error` is per thread.
#![allow(unsafe_code)]

use crate::{
    arena_size, guard, interpreter_create, interpreter_options, last_error_ptr, model_create, Failure,
    FerroliteInterpreter, FerroliteInterpreterOptions, FerroliteModel, FerroliteStatus, FerroliteTensorInfo, Side,
    VERSION,
};
use std::ffi::{c_char, c_void};
use std::{ptr, slice};

/// A shared reference from a possibly NULL pointer.
///
/// # Safety
/// A non-NULL `ptr` must point to a live, aligned `T` not mutated during `'a`.
unsafe fn borrow<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: `as_ref` checks NULL; the caller guarantees the rest.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// An exclusive reference from a possibly NULL pointer.
///
/// # Safety
/// A non-NULL `ptr` must point to a live, aligned `T` not accessed elsewhere during `'a`.
unsafe fn borrow_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: `as_mut` checks NULL; the caller guarantees the rest.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

fn check_len(size: usize, what: &str) -> Result<(), Failure> {
    if size > isize::MAX as usize {
        return Err(Failure::new(FerroliteStatus::InvalidArgument, format!("{what} size {size} is not a buffer size")));
    }
    Ok(())
}

/// A byte slice from a C buffer.
///
/// # Safety
/// A non-NULL `data` must point to `size` readable bytes that stay valid and unchanged for `'a`.
unsafe fn bytes<'a>(data: *const c_void, size: usize, what: &str) -> Result<&'a [u8], Failure> {
    if data.is_null() {
        return Err(Failure::null(what));
    }
    check_len(size, what)?;
    // SAFETY: non-NULL, at most isize::MAX bytes, u8 needs no alignment; validity and
    // immutability for 'a are the caller's promise.
    Ok(unsafe { slice::from_raw_parts(data.cast::<u8>(), size) })
}

/// A mutable byte slice from a C buffer.
///
/// # Safety
/// A non-NULL `data` must point to `size` writable bytes that nothing else accesses during `'a`.
unsafe fn bytes_mut<'a>(data: *mut c_void, size: usize, what: &str) -> Result<&'a mut [u8], Failure> {
    if data.is_null() {
        return Err(Failure::null(what));
    }
    check_len(size, what)?;
    // SAFETY: non-NULL, at most isize::MAX bytes, u8 needs no alignment; exclusivity for 'a is
    // the caller's promise.
    Ok(unsafe { slice::from_raw_parts_mut(data.cast::<u8>(), size) })
}

/// Clears an out-pointer so a failed create leaves NULL behind, then returns it.
///
/// # Safety
/// A non-NULL `out` must point to writable storage for one `*mut T`.
unsafe fn clear_out<'a, T>(out: *mut *mut T, what: &str) -> Result<&'a mut *mut T, Failure> {
    // SAFETY: forwarded from the caller.
    let out = unsafe { borrow_mut(out, what) }?;
    *out = ptr::null_mut();
    Ok(out)
}

/// `len` zeroed bytes from the allocator, or `None` when it has none (instead of aborting).
pub(crate) fn zeroed_bytes(len: usize) -> Option<Box<[u8]>> {
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    if len == 0 {
        return Some(Box::default());
    }
    // SAFETY: the layout has a non-zero size.
    let data = unsafe { std::alloc::alloc_zeroed(layout) };
    if data.is_null() {
        return None;
    }
    // SAFETY: `data` is a fresh, zeroed allocation of `len` bytes with the layout of `[u8; len]`,
    // which is what `Box<[u8]>` frees it with.
    Some(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(data, len)) })
}

/// The library version as a static NUL-terminated string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn ferrolite_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The message of the last failed call on the calling thread ("" before any failure).
/// Successful calls leave it unchanged. The pointer stays valid as long as the thread lives, but
/// the next failing call on the thread rewrites the text: copy it to keep it.
#[no_mangle]
pub extern "C" fn ferrolite_last_error() -> *const c_char {
    last_error_ptr()
}

/// Verifies a `.tflite` model in `data[0..size]` without copying it and returns a handle in
/// `*out_model` (NULL on failure). Any alignment is fine.
///
/// # Safety
/// `data` must point to `size` readable bytes that stay valid and unchanged until the model and
/// every interpreter made from it are deleted. `out_model` must point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_model_create(
    data: *const c_void,
    size: usize,
    out_model: *mut *mut FerroliteModel,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises `out_model` is writable.
        let out = unsafe { clear_out(out_model, "out_model") }?;
        // SAFETY: the caller promises the buffer outlives every user of the model ('static here).
        let model_bytes = unsafe { bytes(data, size, "data") }?;
        *out = Box::into_raw(model_create(model_bytes)?);
        Ok(())
    })
}

/// Frees a model handle (NULL is ignored). Interpreters made from it stay usable.
///
/// # Safety
/// `model` must be NULL or a handle from `ferrolite_model_create` not yet deleted.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_model_delete(model: *mut FerroliteModel) {
    if !model.is_null() {
        // SAFETY: the handle came from Box::into_raw in ferrolite_model_create and is freed once.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// Default interpreter options (TFLM rounding).
#[no_mangle]
pub extern "C" fn ferrolite_interpreter_options_default() -> FerroliteInterpreterOptions {
    FerroliteInterpreterOptions::default()
}

/// Reads optional options: NULL means the defaults.
///
/// # Safety
/// A non-NULL `options` must point to a live options struct.
unsafe fn read_options(options: *const FerroliteInterpreterOptions) -> FerroliteInterpreterOptions {
    // SAFETY: forwarded from the caller; NULL is handled by `as_ref`.
    unsafe { options.as_ref() }.copied().unwrap_or_default()
}

/// Writes the exact arena size in bytes an interpreter for `model` with `options` (NULL =
/// defaults) needs into `*out_bytes`, counted from a `FERROLITE_ARENA_ALIGNMENT`-aligned start
/// (add `FERROLITE_ARENA_ALIGNMENT - 1` for an arena of unknown alignment).
///
/// # Safety
/// `model` must be a live model handle; `options` NULL or valid; `out_bytes` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_arena_size(
    model: *const FerroliteModel,
    options: *const FerroliteInterpreterOptions,
    out_bytes: *mut usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises these pointers are valid when non-NULL.
        let (model, options, out) =
            unsafe { (borrow(model, "model")?, read_options(options), borrow_mut(out_bytes, "out_bytes")?) };
        *out = arena_size(model, options)?;
        Ok(())
    })
}

/// Builds an interpreter for `model` whose tensors all live in `arena[0..arena_size]`, and
/// returns it in `*out_interpreter` (NULL on failure). Fails with `FERROLITE_STATUS_ARENA_TOO_SMALL`
/// (and the bytes needed in the message) when the arena is too small.
///
/// # Safety
/// `model` must be a live model handle; `options` NULL or valid; `out_interpreter` writable.
/// `arena` must point to `arena_size` writable bytes that the caller does not touch, that do not
/// overlap the model buffer, and that stay valid until the interpreter is deleted.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_create(
    model: *const FerroliteModel,
    options: *const FerroliteInterpreterOptions,
    arena: *mut c_void,
    arena_size: usize,
    out_interpreter: *mut *mut FerroliteInterpreter,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises `out_interpreter` is writable and the other pointers are
        // valid when non-NULL; the arena is exclusively ours until the interpreter is deleted.
        let (out, model, options, arena) = unsafe {
            let out = clear_out(out_interpreter, "out_interpreter")?;
            let model = borrow(model, "model")?;
            (out, model, read_options(options), bytes_mut(arena, arena_size, "arena")?)
        };
        interpreter_options(options)?;
        let model_range = model.model.bytes().as_ptr_range();
        let arena_range = arena.as_ptr_range();
        if arena_range.start < model_range.end && model_range.start < arena_range.end {
            return Err(Failure::new(FerroliteStatus::InvalidArgument, "arena overlaps the model buffer"));
        }
        *out = Box::into_raw(interpreter_create(model, options, arena)?);
        Ok(())
    })
}

/// Frees an interpreter handle (NULL is ignored); its arena is the caller's again.
///
/// # Safety
/// `interpreter` must be NULL or a handle from `ferrolite_interpreter_create` not yet deleted.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_delete(interpreter: *mut FerroliteInterpreter) {
    if !interpreter.is_null() {
        // SAFETY: the handle came from Box::into_raw in ferrolite_interpreter_create and is
        // freed once.
        drop(unsafe { Box::from_raw(interpreter) });
    }
}

/// Writes the number of graph inputs into `*out_count`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_input_count(
    interpreter: *const FerroliteInterpreter,
    out_count: *mut usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL.
        let (interpreter, out) = unsafe { (borrow(interpreter, "interpreter")?, borrow_mut(out_count, "out_count")?) };
        *out = interpreter.count(Side::Input);
        Ok(())
    })
}

/// Writes the number of graph outputs into `*out_count`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_output_count(
    interpreter: *const FerroliteInterpreter,
    out_count: *mut usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL.
        let (interpreter, out) = unsafe { (borrow(interpreter, "interpreter")?, borrow_mut(out_count, "out_count")?) };
        *out = interpreter.count(Side::Output);
        Ok(())
    })
}

/// Describes graph input `index` (type, shape, byte size, quantization) in `*out_info`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `out_info` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_input_info(
    interpreter: *const FerroliteInterpreter,
    index: usize,
    out_info: *mut FerroliteTensorInfo,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL.
        let (interpreter, out) = unsafe { (borrow(interpreter, "interpreter")?, borrow_mut(out_info, "out_info")?) };
        *out = interpreter.info(Side::Input, index)?;
        Ok(())
    })
}

/// Describes graph output `index` (type, shape, byte size, quantization) in `*out_info`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `out_info` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_output_info(
    interpreter: *const FerroliteInterpreter,
    index: usize,
    out_info: *mut FerroliteTensorInfo,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL.
        let (interpreter, out) = unsafe { (borrow(interpreter, "interpreter")?, borrow_mut(out_info, "out_info")?) };
        *out = interpreter.info(Side::Output, index)?;
        Ok(())
    })
}

/// Copies `size` bytes (exactly the input's byte size, little-endian elements) into graph input
/// `index`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `data` must point to `size` readable bytes
/// outside the interpreter's arena.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_set_input(
    interpreter: *mut FerroliteInterpreter,
    index: usize,
    data: *const c_void,
    size: usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL and do not overlap.
        let (interpreter, data) = unsafe { (borrow_mut(interpreter, "interpreter")?, bytes(data, size, "data")?) };
        interpreter.set_input(index, data)
    })
}

/// Copies graph output `index` into `data[0..size]`; `size` must equal the output's byte size.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `data` must point to `size` writable bytes
/// outside the interpreter's arena.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_get_output(
    interpreter: *const FerroliteInterpreter,
    index: usize,
    data: *mut c_void,
    size: usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL and do not overlap.
        let (interpreter, data) = unsafe { (borrow(interpreter, "interpreter")?, bytes_mut(data, size, "data")?) };
        interpreter.get_output(index, data)
    })
}

/// Runs the model once on the current inputs.
///
/// # Safety
/// `interpreter` must be NULL or a live interpreter handle.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_invoke(interpreter: *mut FerroliteInterpreter) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises the pointer is valid when non-NULL.
        unsafe { borrow_mut(interpreter, "interpreter") }?.invoke()
    })
}

/// Resets every state (variable) tensor, e.g. LSTM state, to its initial value, so the next
/// invoke starts a fresh sequence.
///
/// # Safety
/// `interpreter` must be NULL or a live interpreter handle.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_reset_state(interpreter: *mut FerroliteInterpreter) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises the pointer is valid when non-NULL.
        unsafe { borrow_mut(interpreter, "interpreter") }?.interpreter.reset_variables();
        Ok(())
    })
}

/// Writes the arena bytes this interpreter actually uses into `*out_bytes`.
///
/// # Safety
/// `interpreter` must be a live interpreter handle; `out_bytes` writable.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_interpreter_arena_used(
    interpreter: *const FerroliteInterpreter,
    out_bytes: *mut usize,
) -> FerroliteStatus {
    guard(|| {
        // SAFETY: the caller promises both pointers are valid when non-NULL.
        let (interpreter, out) = unsafe { (borrow(interpreter, "interpreter")?, borrow_mut(out_bytes, "out_bytes")?) };
        *out = interpreter.interpreter.arena_used();
        Ok(())
    })
}
