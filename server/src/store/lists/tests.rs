//! Tests of the list model against a real SQLite file.

use super::*;
use crate::secret::Secret;
use crate::store::Account;
use crate::store::test_support::*;
use crate::store::types::{Blp, Gtc, ListKind, ListSet, Passport, PhoneProp, Token};

fn email(s: &str) -> Passport {
    Passport::parse(s).unwrap()
}

fn bits(n: u8) -> ListSet {
    ListSet::from_bits(n).unwrap()
}

async fn account(store: &Store, handle: &str, name: &str) -> Account {
    store
        .create_account(&email(handle), name, Secret::new("pw".to_owned()))
        .await
        .unwrap()
}

async fn version(store: &Store, id: AccountId) -> u32 {
    store.account_by_id(id).await.unwrap().unwrap().list_version
}

#[tokio::test]
async fn forward_list_maintains_reverse_list_and_versions_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;

    let out = store
        .add_to_list(alice.id, ListKind::Fl, &bob.email, "Bobby", None)
        .await
        .unwrap();
    assert_eq!(out.version, 1);
    let rl = out.reverse.unwrap();
    assert_eq!((rl.account, rl.version, rl.added), (bob.id, 1, true));
    assert_eq!(rl.email, bob.email);

    let snap = store.list_snapshot(alice.id).await.unwrap();
    assert_eq!(snap.contacts.len(), 1);
    let c = &snap.contacts[0];
    assert_eq!(
        (c.email.as_str(), c.friendly_name.as_str()),
        ("bob@example.com", "Bobby")
    );
    assert_eq!(c.lists, bits(1));
    let ids: Vec<GroupId> = c.groups.iter().map(|g| g.id).collect();
    assert_eq!(ids, vec![GroupId(0)]);
    let bob_snap = store.list_snapshot(bob.id).await.unwrap();
    assert_eq!(bob_snap.version, 1);
    assert_eq!(bob_snap.contacts[0].lists, bits(8));
    assert_eq!(bob_snap.contacts[0].friendly_name.as_str(), "Alice");

    // Bob allows Alice back: his row for her becomes AL|RL, her name kept.
    let out = store
        .add_to_list(bob.id, ListKind::Al, &alice.email, "Alice", None)
        .await
        .unwrap();
    assert_eq!((out.version, out.reverse), (2, None));

    // Versions survive a reopen.
    store.close().await.unwrap();
    let store = file_store(dir.path()).await;
    assert_eq!(version(&store, alice.id).await, 1);
    assert_eq!(version(&store, bob.id).await, 2);

    // Removing from FL clears Bob's RL bit but keeps his AL entry.
    let out = store
        .remove_from_list(alice.id, ListKind::Fl, &bob.email, None)
        .await
        .unwrap();
    assert_eq!(out.version, 2);
    let rl = out.reverse.unwrap();
    assert_eq!((rl.version, rl.added), (3, false));
    assert!(
        store
            .list_snapshot(alice.id)
            .await
            .unwrap()
            .contacts
            .is_empty()
    );
    assert_eq!(
        store.list_snapshot(bob.id).await.unwrap().contacts[0].lists,
        bits(2)
    );
}

#[tokio::test]
async fn list_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;
    let nobody = email("nobody@example.com");
    let add = |list, who: &Passport, group| {
        let (store, who) = (store.clone(), who.clone());
        async move { store.add_to_list(alice.id, list, &who, "N", group).await }
    };

    assert!(matches!(
        add(ListKind::Rl, &bob.email, None).await,
        Err(ListError::ReverseListReadOnly)
    ));
    assert!(matches!(
        add(ListKind::Rl, &nobody, None).await,
        Err(ListError::ReverseListReadOnly)
    ));
    assert!(matches!(
        add(ListKind::Fl, &bob.email, Some(GroupId(9))).await,
        Err(ListError::NoSuchGroup)
    ));
    assert!(matches!(
        add(ListKind::Al, &bob.email, Some(GroupId(0))).await,
        Err(ListError::InvalidParameter)
    ));
    add(ListKind::Fl, &bob.email, None).await.unwrap();
    assert!(matches!(
        add(ListKind::Fl, &bob.email, None).await,
        Err(ListError::AlreadyOnList)
    ));
    assert!(matches!(
        add(ListKind::Fl, &bob.email, Some(GroupId(0))).await,
        Err(ListError::AlreadyOnList)
    ));
    add(ListKind::Bl, &bob.email, None).await.unwrap();
    assert!(matches!(
        add(ListKind::Bl, &bob.email, None).await,
        Err(ListError::AlreadyOnList)
    ));
    assert!(matches!(
        add(ListKind::Al, &bob.email, None).await,
        Err(ListError::InOppositeList)
    ));
    assert!(matches!(
        store
            .add_to_list(alice.id, ListKind::Al, &bob.email, "has space", None)
            .await,
        Err(ListError::InvalidName)
    ));

    let rem = |list, who: &Passport, group| {
        let (store, who) = (store.clone(), who.clone());
        async move { store.remove_from_list(alice.id, list, &who, group).await }
    };
    assert!(matches!(
        rem(ListKind::Al, &bob.email, None).await,
        Err(ListError::NotOnList)
    ));
    assert!(matches!(
        rem(ListKind::Fl, &nobody, None).await,
        Err(ListError::NotOnList)
    ));
    assert!(matches!(
        rem(ListKind::Rl, &bob.email, None).await,
        Err(ListError::ReverseListReadOnly)
    ));
    assert!(matches!(
        rem(ListKind::Fl, &bob.email, Some(GroupId(5))).await,
        Err(ListError::NoSuchGroup)
    ));
    let (_, friends) = store.add_group(alice.id, "Friends").await.unwrap();
    assert!(matches!(
        rem(ListKind::Fl, &bob.email, Some(friends.id)).await,
        Err(ListError::NotInGroup)
    ));
    rem(ListKind::Bl, &bob.email, None).await.unwrap();

    // The FL limit.
    let small = Store::open(
        &dir.path().join("small.db"),
        test_key(),
        StoreOptions {
            limits: ListLimits {
                forward: 1,
                allow_block: 1,
            },
            ..fast_options()
        },
    )
    .await
    .unwrap();
    let a = account(&small, "a@example.com", "A").await;
    let b = account(&small, "b@example.com", "B").await;
    let c = account(&small, "c@example.com", "C").await;
    small
        .add_to_list(a.id, ListKind::Fl, &b.email, "B", None)
        .await
        .unwrap();
    assert!(matches!(
        small
            .add_to_list(a.id, ListKind::Fl, &c.email, "C", None)
            .await,
        Err(ListError::ListFull)
    ));
}

use crate::store::StoreOptions;

#[tokio::test]
async fn groups_and_group_membership() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;

    let (v, friends_key) = store.add_group(alice.id, "Friends").await.unwrap();
    let friends = friends_key.id;
    assert_eq!((v, friends), (1, GroupId(1)));
    let (_, work_key) = store.add_group(alice.id, "Work").await.unwrap();
    let work = work_key.id;
    assert_eq!(work, GroupId(2));
    assert!(!friends_key.guid.is_nil() && friends_key.guid != work_key.guid);
    assert!(matches!(
        store.add_group(alice.id, "Friends").await,
        Err(ListError::GroupExists)
    ));
    assert!(matches!(
        store
            .add_group(alice.id, &"x".repeat(MAX_GROUP_NAME_BYTES + 1))
            .await,
        Err(ListError::GroupNameTooLong)
    ));
    assert!(
        store
            .add_group(alice.id, &"x".repeat(MAX_GROUP_NAME_BYTES))
            .await
            .is_ok()
    );

    store
        .add_to_list(alice.id, ListKind::Fl, &bob.email, "Bob", Some(friends))
        .await
        .unwrap();
    // Already on FL: adding to another group is a change of its own, without RL effects.
    let out = store
        .add_to_list(alice.id, ListKind::Fl, &bob.email, "Bob", Some(work))
        .await
        .unwrap();
    assert_eq!(out.reverse, None);
    let groups =
        |s: ListSnapshot| -> Vec<GroupId> { s.contacts[0].groups.iter().map(|g| g.id).collect() };
    assert_eq!(
        groups(store.list_snapshot(alice.id).await.unwrap()),
        vec![friends, work]
    );

    // Removing from one group keeps the contact on FL.
    let out = store
        .remove_from_list(alice.id, ListKind::Fl, &bob.email, Some(work))
        .await
        .unwrap();
    assert_eq!(out.reverse, None);
    assert_eq!(
        groups(store.list_snapshot(alice.id).await.unwrap()),
        vec![friends]
    );

    // Renaming and removing groups.
    let before = version(&store, alice.id).await;
    assert_eq!(
        store.rename_group(alice.id, friends, "Pals").await.unwrap(),
        before + 1
    );
    assert!(matches!(
        store.rename_group(alice.id, GroupId(17), "X").await,
        Err(ListError::NoSuchGroup)
    ));
    assert!(matches!(
        store.rename_group(alice.id, friends, "Work").await,
        Err(ListError::GroupExists)
    ));
    assert!(matches!(
        store.remove_group(alice.id, GroupId(0)).await,
        Err(ListError::CannotRemoveGroupZero)
    ));
    store.remove_group(alice.id, work).await.unwrap();
    assert!(matches!(
        store.remove_group(alice.id, work).await,
        Err(ListError::NoSuchGroup)
    ));
    store.remove_group(alice.id, friends).await.unwrap();
    let snap = store.list_snapshot(alice.id).await.unwrap();
    assert_eq!(snap.contacts[0].lists, bits(1));
    assert!(snap.contacts[0].groups.is_empty());
    let names: Vec<_> = snap
        .groups
        .iter()
        .map(|g| (g.key.id.0, g.name.as_str().len()))
        .collect();
    assert_eq!(
        names,
        vec![(0, "Other%20Contacts".len()), (3, MAX_GROUP_NAME_BYTES)]
    );

    // Freed ids are reused; the total is capped at MAX_GROUPS including group 0.
    let mut ids = Vec::new();
    for i in 0..MAX_GROUPS - 2 {
        ids.push(
            store
                .add_group(alice.id, &format!("G{i}"))
                .await
                .unwrap()
                .1
                .id,
        );
    }
    assert_eq!(ids[0], GroupId(1));
    assert!(matches!(
        store.add_group(alice.id, "more").await,
        Err(ListError::TooManyGroups)
    ));
}

#[tokio::test]
async fn properties_names_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;

    assert_eq!(store.set_gtc(alice.id, Gtc::N).await.unwrap(), 1);
    assert!(matches!(
        store.set_gtc(alice.id, Gtc::N).await,
        Err(ListError::SameValue)
    ));
    assert_eq!(store.set_blp(alice.id, Blp::Bl).await.unwrap(), 2);
    assert!(matches!(
        store.set_blp(alice.id, Blp::Bl).await,
        Err(ListError::SameValue)
    ));
    assert_eq!(
        store
            .set_phone(alice.id, PhoneProp::Phm, Some("555%201234"))
            .await
            .unwrap(),
        3
    );
    store
        .set_phone(alice.id, PhoneProp::Phh, Some("1"))
        .await
        .unwrap();
    store
        .set_phone(alice.id, PhoneProp::Phh, None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_phone(
                alice.id,
                PhoneProp::Phw,
                Some(&"1".repeat(MAX_PHONE_BYTES + 1))
            )
            .await,
        Err(ListError::InvalidParameter)
    ));
    store
        .set_phone(bob.id, PhoneProp::Mob, Some("Y"))
        .await
        .unwrap();

    assert_eq!(
        store
            .set_friendly_name(alice.id, "Alice%20A.")
            .await
            .unwrap(),
        6
    );
    assert!(matches!(
        store.set_friendly_name(alice.id, "").await,
        Err(ListError::InvalidName)
    ));
    assert_eq!(
        store
            .account_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .friendly_name
            .as_str(),
        "Alice%20A."
    );
    assert!(matches!(
        store.rename_contact(alice.id, &bob.email, "B").await,
        Err(ListError::NotOnList)
    ));
    store
        .add_to_list(alice.id, ListKind::Fl, &bob.email, "Bob", None)
        .await
        .unwrap();
    store
        .add_to_list(alice.id, ListKind::Al, &bob.email, "Bob", None)
        .await
        .unwrap();
    store
        .rename_contact(alice.id, &bob.email, "Bobster")
        .await
        .unwrap();

    store.close().await.unwrap();
    let store = file_store(dir.path()).await;
    let snap = store.list_snapshot(alice.id).await.unwrap();
    assert_eq!((snap.version, snap.gtc, snap.blp), (9, Gtc::N, Blp::Bl));
    assert_eq!(
        snap.phones,
        vec![(PhoneProp::Phm, Token::parse("555%201234").unwrap())]
    );
    let bob_entry = &snap.contacts[0];
    assert_eq!(bob_entry.friendly_name.as_str(), "Bobster");
    assert_eq!(bob_entry.lists, bits(3));
    assert_eq!(
        bob_entry.phones,
        vec![(PhoneProp::Mob, Token::parse("Y").unwrap())]
    );
}

#[tokio::test]
async fn deleting_an_account_cleans_other_lists_and_bumps_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;
    store
        .add_to_list(alice.id, ListKind::Fl, &bob.email, "Bob", None)
        .await
        .unwrap();
    store
        .add_to_list(bob.id, ListKind::Fl, &alice.email, "Alice", None)
        .await
        .unwrap();
    store.new_token(alice.id, "pc").await.unwrap();
    let bob_before = version(&store, bob.id).await;

    store.delete_account(&alice.email).await.unwrap();
    assert_eq!(version(&store, bob.id).await, bob_before + 1);
    assert!(
        store
            .list_snapshot(bob.id)
            .await
            .unwrap()
            .contacts
            .is_empty()
    );
    assert!(matches!(
        store.list_snapshot(alice.id).await,
        Err(ListError::NoSuchAccount)
    ));
    let leftovers: i64 = store
        .call(|c| {
            c.query_row(
                "SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM groups WHERE account_id = 1)
                      + (SELECT COUNT(*) FROM contact_groups)",
                [],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn adding_yourself_sets_both_bits() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let out = store
        .add_to_list(alice.id, ListKind::Fl, &alice.email, "Me", None)
        .await
        .unwrap();
    assert_eq!(out.version, 2);
    assert_eq!(
        store.list_snapshot(alice.id).await.unwrap().contacts[0].lists,
        bits(9)
    );
    store
        .remove_from_list(alice.id, ListKind::Fl, &alice.email, None)
        .await
        .unwrap();
    assert!(
        store
            .list_snapshot(alice.id)
            .await
            .unwrap()
            .contacts
            .is_empty()
    );
}

/// Rows in `accounts`, placeholders included.
async fn account_rows(store: &Store) -> i64 {
    store
        .call(|conn| conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0)))
        .await
        .unwrap()
}

#[tokio::test]
async fn unregistered_handles_are_listed_like_registered_ones_that_never_come_online() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let carol = account(&store, "carol@example.com", "Carol").await;
    let nobody = email("nobody@example.com");
    // The same requests for a registered, offline handle and an unregistered one give the
    // same outcomes, error for error.
    for who in [&carol.email, &nobody] {
        let before = version(&store, alice.id).await;
        let add = |list, group| {
            let (store, who) = (store.clone(), who.clone());
            async move { store.add_to_list(alice.id, list, &who, "Them", group).await }
        };
        let fl = add(ListKind::Fl, None).await.unwrap();
        assert_eq!(fl.version, before + 1);
        assert_eq!(fl.bits, bits(1));
        assert!(fl.reverse.as_ref().is_some_and(|r| r.added));
        assert!(matches!(
            add(ListKind::Fl, None).await,
            Err(ListError::AlreadyOnList)
        ));
        assert!(matches!(
            add(ListKind::Fl, Some(GroupId(7))).await,
            Err(ListError::NoSuchGroup)
        ));
        assert_eq!(add(ListKind::Al, None).await.unwrap().bits, bits(3));
        assert!(matches!(
            add(ListKind::Bl, None).await,
            Err(ListError::InOppositeList)
        ));
        assert_eq!(
            store
                .rename_contact(alice.id, who, "Renamed")
                .await
                .unwrap(),
            before + 3
        );
        assert_eq!(
            store
                .remove_from_list(alice.id, ListKind::Al, who, None)
                .await
                .unwrap()
                .version,
            before + 4
        );
        assert!(matches!(
            store
                .remove_from_list(alice.id, ListKind::Bl, who, None)
                .await,
            Err(ListError::NotOnList)
        ));
    }
    // SYN shows both alike: FL, the stored name, group 0.
    let snapshot = store.list_snapshot(alice.id).await.unwrap();
    let shown: Vec<_> = snapshot
        .contacts
        .iter()
        .map(|c| {
            (
                c.email.as_str(),
                c.friendly_name.as_str(),
                c.lists,
                c.groups.iter().map(|g| g.id).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("carol@example.com", "Renamed", bits(1), vec![GroupId(0)]),
            ("nobody@example.com", "Renamed", bits(1), vec![GroupId(0)]),
        ]
    );
    // The placeholder is no account: not listed, not found, no login, no password.
    assert!(store.account(&nobody).await.unwrap().is_none());
    assert_eq!(store.accounts().await.unwrap().len(), 2);
    assert!(
        store
            .verify_password(&nobody, &Secret::new(String::new()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.set_password(&nobody, Secret::new("x".into())).await,
        Err(crate::store::AccountError::NoSuchAccount)
    ));
    assert_eq!(account_rows(&store).await, 3);
    // Registering the handle keeps the lists that name it: alice is on its RL.
    let registered = account(&store, "nobody@example.com", "Nobody").await;
    assert_eq!(registered.friendly_name.as_str(), "Nobody");
    let theirs = store.list_snapshot(registered.id).await.unwrap();
    assert_eq!(theirs.contacts.len(), 1);
    assert_eq!(theirs.contacts[0].email, alice.email);
    assert_eq!(theirs.contacts[0].lists, bits(8));
    assert!(theirs.version > 0);
    assert_eq!(account_rows(&store).await, 3);
}

#[tokio::test]
async fn a_placeholder_nobody_lists_any_more_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let bob = account(&store, "bob@example.com", "Bob").await;
    let ghost = email("ghost@example.com");
    store
        .add_to_list(alice.id, ListKind::Fl, &ghost, "G", None)
        .await
        .unwrap();
    store
        .add_to_list(alice.id, ListKind::Bl, &ghost, "G", None)
        .await
        .unwrap();
    store
        .add_to_list(bob.id, ListKind::Al, &ghost, "G", None)
        .await
        .unwrap();
    // A failed request leaves no placeholder behind either.
    assert!(matches!(
        store
            .add_to_list(
                alice.id,
                ListKind::Fl,
                &email("x@example.com"),
                "X",
                Some(GroupId(9))
            )
            .await,
        Err(ListError::NoSuchGroup)
    ));
    assert_eq!(account_rows(&store).await, 3);
    store
        .remove_from_list(alice.id, ListKind::Fl, &ghost, None)
        .await
        .unwrap();
    store
        .remove_from_list(alice.id, ListKind::Bl, &ghost, None)
        .await
        .unwrap();
    // Bob still lists it.
    assert_eq!(account_rows(&store).await, 3);
    // Deleting the last account that lists it takes it along.
    store.delete_account(&bob.email).await.unwrap();
    assert_eq!(account_rows(&store).await, 1);
}

#[tokio::test]
async fn the_virtual_pager_contact_is_never_a_list_entry_nor_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let alice = account(&store, "alice@example.com", "Alice").await;
    let pager = email(relive_msnp::pager::VIRTUAL_HANDLE);
    for list in [ListKind::Fl, ListKind::Al, ListKind::Bl] {
        assert!(matches!(
            store
                .add_to_list(alice.id, list, &pager, "Pager", None)
                .await,
            Err(ListError::ReservedHandle)
        ));
        assert!(matches!(
            store.add_to_list_unnamed(alice.id, list, &pager).await,
            Err(ListError::ReservedHandle)
        ));
    }
    assert_eq!(version(&store, alice.id).await, 0);
    assert!(matches!(
        store
            .create_account(&pager, "Pager", Secret::new("pw".to_owned()))
            .await,
        Err(crate::store::AccountError::InvalidHandle)
    ));
}

/// A list change in flight (boxed, so that changes of different kinds share one `join_all`).
type Change<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Many list changes of one account at once (on PostgreSQL they run on the pool's connections
/// concurrently; on SQLite one after the other): every change gets its own list version, the
/// versions have no gap and no duplicate, and the final lists are exactly what the changes
/// say — no lost update.
#[tokio::test]
async fn concurrent_changes_of_one_account_lose_nothing_and_never_share_a_version() {
    use futures_util::future::join_all;
    const CONTACTS: usize = 40;
    const ALLOWED: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path()).await;
    let hub = account(&store, "hub@example.com", "Hub").await;
    let mut contacts = Vec::new();
    for i in 0..CONTACTS {
        contacts.push(account(&store, &format!("c{i}@example.com"), &format!("C{i}")).await);
    }

    // Round 1, all at once: the hub adds every contact to its FL (and the first ones to AL),
    // every contact adds the hub (each bumps the hub's version through its RL), and the hub
    // adds groups. Each returns the hub's version after it.
    let hub_adds = |list: ListKind, who: &Passport| -> Change<u32> {
        let (s, who) = (store.clone(), who.clone());
        Box::pin(async move {
            let out = s.add_to_list(hub.id, list, &who, "N", None).await;
            out.unwrap().version
        })
    };
    let mut changes: Vec<Change<u32>> = Vec::new();
    for (i, c) in contacts.iter().enumerate() {
        changes.push(hub_adds(ListKind::Fl, &c.email));
        let (s, me, hub_email) = (store.clone(), c.id, hub.email.clone());
        changes.push(Box::pin(async move {
            let out = s
                .add_to_list(me, ListKind::Fl, &hub_email, "Hub", None)
                .await
                .unwrap();
            let rl = out.reverse.unwrap();
            assert_eq!(rl.account, hub.id);
            rl.version
        }));
        if i < ALLOWED {
            changes.push(hub_adds(ListKind::Al, &c.email));
        }
    }
    for g in 0..4 {
        let s = store.clone();
        changes.push(Box::pin(async move {
            s.add_group(hub.id, &format!("G{g}")).await.unwrap().0
        }));
    }
    let mut versions: Vec<u32> = join_all(changes).await;
    versions.sort_unstable();
    let expected: Vec<u32> = (1..=u32::try_from(2 * CONTACTS + ALLOWED + 4).unwrap()).collect();
    assert_eq!(versions, expected, "the hub's versions: one each, no gap");

    let snap = store.list_snapshot(hub.id).await.unwrap();
    assert_eq!(snap.version, *expected.last().unwrap());
    assert_eq!(snap.groups.len(), 5);
    assert_eq!(snap.contacts.len(), CONTACTS);
    for c in &snap.contacts {
        let i: usize = c.email.as_str()[1..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = if i < ALLOWED { 1 | 2 | 8 } else { 1 | 8 };
        assert_eq!(c.lists, bits(want), "{}", c.email.as_str());
    }
    for c in &contacts {
        // Its own add, and the hub's add putting it on its RL.
        assert_eq!(version(&store, c.id).await, 2, "{}", c.email.as_str());
    }

    // Round 2, all at once: everything taken off FL from both sides.
    let mut changes = Vec::new();
    for c in &contacts {
        let (s, who) = (store.clone(), c.email.clone());
        changes.push(Box::pin(async move {
            s.remove_from_list(hub.id, ListKind::Fl, &who, None)
                .await
                .unwrap()
                .version
        }) as Change<u32>);
        let (s, me, hub_email) = (store.clone(), c.id, hub.email.clone());
        changes.push(Box::pin(async move {
            s.remove_from_list(me, ListKind::Fl, &hub_email, None)
                .await
                .unwrap()
                .reverse
                .unwrap()
                .version
        }));
    }
    let mut versions = join_all(changes).await;
    versions.sort_unstable();
    let base = *expected.last().unwrap();
    let expected: Vec<u32> = (base + 1..=base + u32::try_from(2 * CONTACTS).unwrap()).collect();
    assert_eq!(versions, expected);
    let snap = store.list_snapshot(hub.id).await.unwrap();
    assert_eq!(snap.version, *expected.last().unwrap());
    // Only the AL entries are left.
    assert_eq!(snap.contacts.len(), ALLOWED);
    assert!(snap.contacts.iter().all(|c| c.lists == bits(2)));
    for c in &contacts {
        assert_eq!(version(&store, c.id).await, 4, "{}", c.email.as_str());
        assert!(store.list_snapshot(c.id).await.unwrap().contacts.is_empty());
    }
    eprintln!("operations run again after a conflict: {}", store.retried());
}
