//! The echo workload (`--handler zero-alloc`): every text or binary message goes back unchanged,
//! in a frame of the same type. Engines send the very message they received, so echoing copies
//! nothing and allocates nothing.

use super::{DataKind, Reply, Workload};

/// Echoes every data message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Workload for Echo {
    #[inline]
    fn on_message(&mut self, _kind: DataKind, _payload: &[u8]) -> Reply {
        Reply::Echo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_both_frame_types() {
        assert_eq!(Echo.on_message(DataKind::Text, b"hi"), Reply::Echo);
        assert_eq!(Echo.on_message(DataKind::Binary, &[0, 1, 2]), Reply::Echo);
        assert_eq!(Echo.on_message(DataKind::Binary, &[]), Reply::Echo);
    }
}
