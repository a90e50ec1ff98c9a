use super::*;

#[tokio::test]
async fn allocates_even_pairs_and_reuses_released_ones() {
    let blocker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let base = taken - taken % 2;
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), base..=base + 5);
    let first = pool.allocate().unwrap();
    assert_eq!(first.port % 2, 0);
    assert_ne!(first.port, base, "a port held by another program is skipped");
    let second = pool.allocate().unwrap();
    assert_eq!(pool.in_use(), 2);
    assert!(matches!(pool.allocate(), Err(MediaError::Exhausted)));
    let freed = second.port;
    drop(second);
    assert_eq!(pool.in_use(), 1);
    assert_eq!(pool.allocate().unwrap().port, freed);
    drop(first);
    assert_eq!(pool.in_use(), 0);
}
