pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN { return i32::MAX; }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + ((x < 0) as i32);
    (x >> exponent) + ((remainder > threshold) as i32)
}
pub fn multiply_by_quantized_multiplier(x: i32, m: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x.wrapping_mul(1 << left), m), right)
}
pub fn multiply_by_quantized_multiplier_single_round(x: i32, m: i32, shift: i32) -> i32 {
    let total = 31 - shift;
    let round = 1i64 << (total - 1);
    ((x as i64 * m as i64 + round) >> total) as i32
}
pub fn quantize_multiplier(d: f64) -> (i32, i32) {
    if d == 0.0 { return (0, 0); }
    let (q, mut shift) = libm::frexp(d);
    let mut qf = libm::round(q * (1i64 << 31) as f64) as i64;
    if qf == 1i64 << 31 { qf /= 2; shift += 1; }
    if shift < -31 { shift = 0; qf = 0; }
    (qf as i32, shift)
}
