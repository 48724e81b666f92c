// The clip index: filters, sort and pages over window.HIW_CLIPS (data/clips.js). Everything from the data is set
// as text (textContent, option values), never parsed as HTML.
(function () {
  "use strict";
  const clips = window.HIW_CLIPS || [];
  const form = document.getElementById("filters");
  const rows = document.getElementById("rows");
  const count = document.getElementById("clip-count");
  const label = document.getElementById("clip-count-label");
  const pageInfo = document.getElementById("page-info");
  const PAGE = 100;
  let page = 0;
  let shown = clips;

  // filter name -> the values a clip has for it
  const facets = {
    status: (c) => [c.status],
    verb: (c) => c.verbs,
    object: (c) => c.objects,
    kind: (c) => c.kinds,
    qa: (c) => [c.qa],
    reason: (c) => c.reasons,
    video: (c) => [c.video],
  };
  const videoNames = {};
  clips.forEach((c) => { videoNames[c.video] = c.source; });

  Object.keys(facets).forEach((name) => {
    const values = new Set();
    clips.forEach((c) => facets[name](c).forEach((v) => { if (v !== null && v !== undefined && v !== "") values.add(v); }));
    const select = form.elements[name];
    Array.from(values).sort().forEach((v) => {
      const option = document.createElement("option");
      option.value = v;
      option.textContent = name === "video" ? videoNames[v] + " (" + v + ")" : v;
      select.appendChild(option);
    });
  });

  const sorts = {
    video: (a, b) => (a.video < b.video ? -1 : a.video > b.video ? 1 : a.start - b.start),
    both: (a, b) => (a.both ?? 2) - (b.both ?? 2),
    jitter: (a, b) => (b.jitter ?? -1) - (a.jitter ?? -1),
    duration: (a, b) => (b.end - b.start) - (a.end - a.start),
  };

  function apply() {
    const wanted = {};
    Object.keys(facets).forEach((name) => { wanted[name] = form.elements[name].value; });
    const text = form.elements.text.value.trim().toLowerCase();
    shown = clips.filter((c) =>
      Object.keys(facets).every((name) => !wanted[name] || facets[name](c).includes(wanted[name])) &&
      (!text || c.caption.toLowerCase().includes(text) || c.narration.toLowerCase().includes(text)));
    shown.sort(sorts[form.elements.sort.value] || sorts.video);
    page = 0;
    count.textContent = String(shown.length);
    label.textContent = shown.length === 1 ? "clip" : "clips";
    render();
  }

  function cell(tr, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    rows.replaceChildren();
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach((c) => {
      const tr = document.createElement("tr");
      tr.dataset.clip = c.id;
      const thumb = cell(tr, "");
      if (c.thumb) {
        const img = document.createElement("img");
        img.className = "thumb";
        img.loading = "lazy";
        img.alt = "";
        img.src = c.thumb;
        thumb.appendChild(img);
      }
      const link = document.createElement("a");
      link.href = "clips/" + c.id + ".html";
      link.textContent = c.id;
      cell(tr, "").appendChild(link);
      cell(tr, c.status, c.status);
      cell(tr, c.start.toFixed(1) + "–" + c.end.toFixed(1));
      cell(tr, c.both === null ? "" : Math.round(100 * c.both) + "%");
      cell(tr, c.jitter === null ? "" : c.jitter.toFixed(1));
      const caption = cell(tr, c.caption, "caption");
      if (c.narration) {
        const narration = document.createElement("div");
        narration.className = "muted";
        narration.textContent = "narration: " + c.narration;
        caption.appendChild(narration);
      }
      cell(tr, c.kind || "");
      cell(tr, c.qa, c.qa);
      cell(tr, c.reasons.join(", "));
      rows.appendChild(tr);
    });
    pageInfo.textContent = "page " + (page + 1) + " of " + pages;
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = page >= pages - 1;
  }

  form.addEventListener("input", apply);
  form.addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("prev").addEventListener("click", () => { page -= 1; render(); });
  document.getElementById("next").addEventListener("click", () => { page += 1; render(); });
  apply();
})();
