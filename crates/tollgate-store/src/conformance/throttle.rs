//! Conformance cases for [`LoginThrottleStore`](crate::LoginThrottleStore): slots taken atomically,
//! given back, windows that start over, purges.

use std::time::Duration;

use super::fixtures::{at, join_all};
use crate::{LoginSlot, Store};

const WINDOW: Duration = Duration::from_secs(60);

/// Ten concurrent attempts against three slots take exactly three; the rest learn when the window
/// ends. Another client is not affected; a slot given back can be taken again; an ended window
/// starts over; a purge deletes clients whose window began before its cut-off.
pub async fn login_slots_are_taken_atomically_and_given_back(store: &dyn Store) {
    let attempts = join_all((0..10).map(|_| store.take_login_slot("192.0.2.1", at(0), WINDOW, 3)).collect()).await;
    let mut taken = 0;
    for attempt in attempts {
        match attempt.unwrap() {
            LoginSlot::Taken { window_started } => {
                assert_eq!(window_started, at(0));
                taken += 1;
            }
            LoginSlot::Full { retry_at } => assert_eq!(retry_at, at(60)),
        }
    }
    assert_eq!(taken, 3, "exactly the limit, however many ask at once");

    let other = store.take_login_slot("192.0.2.2", at(1), WINDOW, 3).await.unwrap();
    assert_eq!(other, LoginSlot::Taken { window_started: at(1) });

    store.return_login_slot("192.0.2.1", at(0)).await.unwrap();
    let again = store.take_login_slot("192.0.2.1", at(30), WINDOW, 3).await.unwrap();
    assert_eq!(again, LoginSlot::Taken { window_started: at(0) }, "the window keeps its start");
    let full = store.take_login_slot("192.0.2.1", at(31), WINDOW, 3).await.unwrap();
    assert_eq!(full, LoginSlot::Full { retry_at: at(60) });
    // Giving back a slot of a window that has ended since changes nothing.
    store.return_login_slot("192.0.2.1", at(-120)).await.unwrap();
    let still_full = store.take_login_slot("192.0.2.1", at(32), WINDOW, 3).await.unwrap();
    assert_eq!(still_full, LoginSlot::Full { retry_at: at(60) });

    let restarted = store.take_login_slot("192.0.2.1", at(60), WINDOW, 3).await.unwrap();
    assert_eq!(restarted, LoginSlot::Taken { window_started: at(60) }, "an ended window starts over");

    assert_eq!(store.purge_login_slots(at(30)).await.unwrap(), 1, "192.0.2.2's window began at 1 s");
    let fresh = store.take_login_slot("192.0.2.2", at(40), WINDOW, 3).await.unwrap();
    assert_eq!(fresh, LoginSlot::Taken { window_started: at(40) });
}
