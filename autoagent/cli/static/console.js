// Live parts of the console's pages: each element with data-live is fetched again every
// PERIOD ms and replaced by the fresh copy the server renders. An element with data-version
// sends it, and the server answers 204 (nothing) while it is current. An element with data-key
// is replaced only when its key changes (the forms of the pending requests, so that what is
// being typed stays); one marked data-final (a run that has ended) is not fetched again.
"use strict";
(function () {
  const PERIOD = 1500;

  async function refresh(id) {
    const current = document.getElementById(id);
    if (!current || current.dataset.final !== undefined) return false;
    const url = new URL(current.dataset.live, window.location.href);
    if (current.dataset.version !== undefined) url.searchParams.set("since", current.dataset.version);
    const response = await fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    });
    if (response.status === 204 || !response.ok) return true;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById(id);
    if (!fresh) return true;
    if (current.dataset.key !== undefined && current.dataset.key === fresh.dataset.key) return true;
    current.replaceWith(document.importNode(fresh, true));
    return fresh.dataset.final === undefined;
  }

  function watch(id) {
    const tick = async () => {
      let again = true;
      try {
        again = await refresh(id);
      } catch (error) {
        again = true; // the console was restarted, or the network blinked: try again
      }
      if (again) setTimeout(tick, PERIOD);
    };
    setTimeout(tick, PERIOD);
  }

  for (const element of document.querySelectorAll("[data-live][id]")) {
    if (element.dataset.final === undefined) watch(element.id);
  }
})();
