pub mod digest;
pub mod registrar;
