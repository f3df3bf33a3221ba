//! The list machinery: [`ListQuery`] (page, page size, agent; await it or stream every item),
//! the sealed [`ListItem`] trait of the types a list endpoint returns, [`Page<T>`], and the
//! lazy stream over every item of every page.

use std::future::{Future, IntoFuture};

use futures::{Stream, TryStreamExt, stream};

use super::BoxFuture;
use crate::RalioClient;
use crate::error::Result;

/// One page of a list endpoint: the items, and where they sit in the whole list.
///
/// Lists are newest first. A page can be iterated directly (`for tx in page`) and is sized
/// ([`Page::len`]); [`Page::total`] counts every page.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items the whole list holds, over all pages.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u64,
    /// The page size the server applied.
    pub per_page: u64,
}

impl<T> Page<T> {
    /// Build a page.
    pub fn new(items: Vec<T>, total: u64, page: u64, per_page: u64) -> Self {
        Page {
            items,
            total,
            page,
            per_page,
        }
    }

    /// A page from a list envelope, with the official SDKs' defaults for what the server left
    /// out: `total` and `per_page` default to the number of items, `page` to 1. A negative
    /// count reads as 0.
    pub(crate) fn from_envelope(
        items: Vec<T>,
        total: Option<i64>,
        page: Option<i64>,
        per_page: Option<i64>,
    ) -> Self {
        let count =
            |n: Option<i64>, default: u64| n.map_or(default, |n| u64::try_from(n).unwrap_or(0));
        let len = items.len() as u64;
        Page::new(
            items,
            count(total, len),
            count(page, 1).max(1),
            count(per_page, len),
        )
    }

    /// Number of items on this page.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether this page holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Iterate over the items of this page.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Whether pages after this one hold more items.
    pub fn has_next(&self) -> bool {
        self.page.saturating_mul(self.per_page) < self.total && !self.items.is_empty()
    }

    /// The number of the next page, if there is one.
    pub fn next_page(&self) -> Option<u64> {
        self.has_next().then(|| self.page + 1)
    }
}

impl<T> IntoIterator for Page<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Page<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

struct PagerState<F, T> {
    fetch: F,
    next_page: Option<u64>,
    yielded: u64,
    /// The items of the previous page: a server that answers every page with the same items
    /// (it ignores `page`) is stopped at the first repeat.
    previous: Option<Vec<T>>,
    /// The last page worth asking for, `ceil(total / per_page)` as the first page reported
    /// them (raised when a later page reports a larger total, never past `u64::MAX`).
    last_page: u64,
}

/// A lazy stream over every item of every page, starting at `first_page`.
///
/// A page is fetched only when the previous one is used up. The stream stops at `total` (as the
/// first page reported it, or later pages when the list grows), at an empty page, at a page
/// whose items repeat the previous page's, after `ceil(total / per_page)` pages, or at the
/// first error, which it yields. Items past `total` on the last page are not yielded, so
/// neither a list that shrinks while it is walked nor a server that claims a huge `total` can
/// make the stream run forever.
pub(crate) fn paginate<T, F, Fut>(first_page: u64, fetch: F) -> impl Stream<Item = Result<T>>
where
    T: PartialEq + Clone,
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let state = PagerState {
        fetch,
        next_page: Some(first_page.max(1)),
        yielded: 0,
        previous: None,
        last_page: 0,
    };
    stream::try_unfold(state, |mut state| async move {
        let Some(number) = state.next_page else {
            return Ok::<_, crate::Error>(None);
        };
        let page = (state.fetch)(number).await?;
        if state.previous.as_ref() == Some(&page.items) {
            tracing::debug!(
                page = number,
                "list page repeats the previous one; stopping"
            );
            return Ok(None);
        }
        let pages = page.total.div_ceil(page.per_page.max(1));
        state.last_page = state.last_page.max(pages);
        let already_before = (number.saturating_sub(1)).saturating_mul(page.per_page);
        // Items the server counts before this page: those we skipped by starting later, plus
        // those we yielded.
        let seen_before = already_before.max(state.yielded);
        let room = page.total.saturating_sub(seen_before);
        let mut items = page.items;
        items.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        state.yielded = seen_before.saturating_add(items.len() as u64);
        state.next_page =
            (!items.is_empty() && state.yielded < page.total && number < state.last_page)
                .then(|| number.saturating_add(1));
        state.previous = Some(items.clone());
        Ok(Some((stream::iter(items.into_iter().map(Ok)), state)))
    })
    .try_flatten()
}

/// Query of a list endpoint: page, page size, agent. Await it for one [`Page`], or call
/// [`all`](ListQuery::all) for a lazy stream over every item.
#[derive(Debug, Clone)]
#[must_use = "a list request is sent only when awaited or streamed"]
pub struct ListQuery<'a, T> {
    client: &'a RalioClient,
    page: u64,
    per_page: u64,
    agent_id: Option<String>,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<'a, T> ListQuery<'a, T> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        ListQuery {
            client,
            page: 1,
            per_page: crate::config::DEFAULT_PER_PAGE,
            agent_id: None,
            _item: std::marker::PhantomData,
        }
    }

    /// The page, from 1 (default 1). 0 is treated as 1.
    pub fn page(mut self, page: u64) -> Self {
        self.page = page.max(1);
        self
    }

    /// Items per page (default 50). 0 is treated as 1.
    pub fn per_page(mut self, per_page: u64) -> Self {
        self.per_page = per_page.max(1);
        self
    }

    /// Only items of this agent.
    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.agent_id = Some(id.into());
        self
    }
}

/// An item type a list endpoint returns: [`Transaction`](crate::Transaction) and
/// [`PaymentIntent`](crate::PaymentIntent).
///
/// Name it as a bound to write code generic over the lists, for example one function that
/// prints either list:
///
/// ```no_run
/// use futures::TryStreamExt as _;
/// use ralio::resources::{ListItem, ListQuery};
///
/// async fn count_all<T: ListItem>(query: ListQuery<'_, T>) -> ralio::Result<usize> {
///     let items: Vec<T> = query.all().try_collect().await?;
///     Ok(items.len())
/// }
///
/// # async fn demo(client: &ralio::RalioClient) -> ralio::Result<()> {
/// let transactions = count_all(client.transactions().list()).await?;
/// let intents = count_all(client.payment_intents().list()).await?;
/// # Ok(()) }
/// ```
///
/// The trait is sealed: the SDK implements it for the types its list endpoints return, and
/// code outside the crate cannot implement it (a list needs an endpoint):
///
/// ```compile_fail
/// #[derive(Debug, Clone, PartialEq)]
/// struct Mine;
/// impl ralio::resources::ListItem for Mine {}
/// ```
pub trait ListItem: sealed::Fetch + Sized + Send + PartialEq + Clone + 'static {}

pub(crate) mod sealed {
    use super::{BoxFuture, Page, RalioClient, Result};

    /// What a list endpoint needs to fetch one page. Public in a private module: it seals
    /// [`ListItem`](super::ListItem).
    pub trait Fetch: Sized {
        /// One page of this item's list.
        fn fetch<'c>(
            client: &'c RalioClient,
            page: u64,
            per_page: u64,
            agent: Option<String>,
        ) -> BoxFuture<'c, Result<Page<Self>>>;
    }
}

impl<'a, T: ListItem> ListQuery<'a, T> {
    /// A lazy stream over every item of every page from this query's page on, fetching a page
    /// only when the previous one is used up, and stopping at `total`.
    pub fn all(self) -> impl Stream<Item = Result<T>> + Send + 'a {
        let ListQuery {
            client,
            page,
            per_page,
            agent_id,
            ..
        } = self;
        paginate(page, move |n| {
            <T as sealed::Fetch>::fetch(client, n, per_page, agent_id.clone())
        })
    }
}

impl<'a, T: ListItem> IntoFuture for ListQuery<'a, T> {
    type Output = Result<Page<T>>;
    type IntoFuture = BoxFuture<'a, Result<Page<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        <T as sealed::Fetch>::fetch(self.client, self.page, self.per_page, self.agent_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::{Arc, Mutex};

    /// A fake server holding `total` items, answering pages of `per_page`.
    fn server(
        total: u64,
        per_page: u64,
        calls: Arc<Mutex<Vec<u64>>>,
    ) -> impl FnMut(u64) -> futures::future::Ready<Result<Page<u64>>> {
        move |page| {
            calls.lock().unwrap().push(page);
            let start = (page - 1) * per_page;
            let items: Vec<u64> = (start..(start + per_page).min(total)).collect();
            futures::future::ready(Ok(Page::new(items, total, page, per_page)))
        }
    }

    /// Every item of a walk over `total` items, `per_page` a page, and the pages it asked for.
    async fn walk(total: u64, per_page: u64) -> (Vec<u64>, Vec<u64>) {
        let calls = Arc::new(Mutex::new(vec![]));
        let all: Vec<u64> = paginate(1, server(total, per_page, calls.clone()))
            .try_collect()
            .await
            .unwrap();
        let asked = calls.lock().unwrap().clone();
        (all, asked)
    }

    #[tokio::test]
    async fn walks_every_page_and_stops_at_total() {
        let (all, asked) = walk(7, 3).await;
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert_eq!(asked, vec![1, 2, 3], "no request past the last page");
    }

    #[tokio::test]
    async fn exact_multiple_does_not_fetch_an_empty_page() {
        let (all, asked) = walk(6, 3).await;
        assert_eq!(all.len(), 6);
        assert_eq!(asked, vec![1, 2]);
    }

    #[tokio::test]
    async fn empty_list_makes_one_request() {
        let (all, asked) = walk(0, 3).await;
        assert!(all.is_empty());
        assert_eq!(asked, vec![1]);
    }

    #[tokio::test]
    async fn lazy_taking_two_items_fetches_one_page() {
        let calls = Arc::new(Mutex::new(vec![]));
        let two: Vec<u64> = paginate(1, server(100, 10, calls.clone()))
            .take(2)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(two, vec![0, 1]);
        assert_eq!(*calls.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn starting_later_counts_the_skipped_pages() {
        let calls = Arc::new(Mutex::new(vec![]));
        let rest: Vec<u64> = paginate(2, server(7, 3, calls.clone()))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rest, vec![3, 4, 5, 6]);
        assert_eq!(*calls.lock().unwrap(), vec![2, 3]);
    }

    #[tokio::test]
    async fn a_server_that_overreports_total_cannot_loop_forever() {
        // Claims 1000 items but every page after the first is empty.
        let fetch = |page: u64| {
            let items = if page == 1 { vec![1u64, 2] } else { vec![] };
            futures::future::ready(Ok(Page::new(items, 1000, page, 2)))
        };
        let all: Vec<u64> = paginate(1, fetch).try_collect().await.unwrap();
        assert_eq!(all, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_server_repeating_one_page_under_a_huge_total_is_stopped() {
        let calls = Arc::new(Mutex::new(0u64));
        let counter = Arc::clone(&calls);
        // Ignores `page`: the same two items forever, claiming u64::MAX items.
        let fetch = move |page: u64| {
            *counter.lock().unwrap() += 1;
            futures::future::ready(Ok(Page::new(vec![1u64, 2], u64::MAX, page, 2)))
        };
        let all: Vec<u64> = paginate(1, fetch).try_collect().await.unwrap();
        assert_eq!(all, vec![1, 2]);
        assert_eq!(*calls.lock().unwrap(), 2, "stopped at the first repeat");
    }

    #[tokio::test]
    async fn no_more_pages_than_total_over_per_page() {
        let calls = Arc::new(Mutex::new(vec![]));
        let counter = Arc::clone(&calls);
        // Distinct items, but the server claims 4 items in pages of 2 while sending 1 a page.
        let fetch = move |page: u64| {
            counter.lock().unwrap().push(page);
            futures::future::ready(Ok(Page::new(vec![page], 4, page, 2)))
        };
        let all: Vec<u64> = paginate(1, fetch).try_collect().await.unwrap();
        assert_eq!(all, vec![1, 2]);
        assert_eq!(*calls.lock().unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_server_sending_more_than_total_is_cut_at_total() {
        let fetch = |page: u64| futures::future::ready(Ok(Page::new(vec![page; 5], 3, page, 5)));
        let all: Vec<u64> = paginate(1, fetch).try_collect().await.unwrap();
        assert_eq!(all, vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn an_error_is_yielded_and_ends_the_stream() {
        let fetch = |page: u64| {
            futures::future::ready(if page == 1 {
                Ok(Page::new(vec![1u64], 5, 1, 1))
            } else {
                Err(crate::Error::Timeout {
                    what: crate::error::Awaited::ChatReply,
                    waited: std::time::Duration::ZERO,
                })
            })
        };
        let got: Vec<_> = paginate(1, fetch).collect().await;
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
    }

    #[test]
    fn page_is_iterable_and_sized() {
        let page = Page::new(vec!["a", "b"], 5, 1, 2);
        assert_eq!(page.len(), 2);
        assert!(page.has_next());
        assert_eq!(page.next_page(), Some(2));
        assert_eq!((&page).into_iter().count(), 2);
        let last = Page::new(vec!["e"], 5, 3, 2);
        assert!(!last.has_next());
        assert_eq!(last.into_iter().collect::<Vec<_>>(), vec!["e"]);
    }
}
