// The shell: the key form, hash routes (#/overview, #/runs[/<id>], #/quality[/<id>],
// #/incidents) and the live-feed indicator. Each view returns a function that closes what it
// opened (its feed connection).
import { keyStore } from "./api.js";
import { incidents } from "./incidents.js";
import { overview } from "./overview.js";
import { evalRun, quality } from "./quality.js";
import { run } from "./run.js";
import { runs } from "./runs.js";

const main = document.getElementById("view");
const liveState = document.getElementById("live-state");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
const keyState = document.getElementById("key-state");
let closeView = () => {};

const setLive = (state) => { liveState.textContent = `Live feed: ${state}`; };

function route() {
  closeView();
  setLive("connecting");
  main.replaceChildren();
  const [, view = "overview", id] = location.hash.split("/").map(decodeURIComponent);
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "runs" && id) closeView = run(main, id, setLive);
  else if (view === "runs") closeView = runs(main, setLive);
  else if (view === "quality" && id) closeView = evalRun(main, id, setLive);
  else if (view === "quality") closeView = quality(main, setLive);
  else if (view === "incidents") closeView = incidents(main, setLive);
  else closeView = overview(main, setLive);
  document.title = `${main.querySelector("h1")?.textContent ?? "Dashboard"}: LLM reliability platform`;
}

function showKeyState() {
  keyState.textContent = keyStore.get() ? "key set" : "no key (dev tenant, if dev mode is on)";
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (key) keyStore.set(key, document.getElementById("remember-key").checked);
  else keyStore.clear();
  keyInput.value = "";
  showKeyState();
  route();
});

window.addEventListener("hashchange", () => { route(); main.focus(); });
// Modules run after the document is parsed and after uPlot's deferred script: no need to wait
// for the load event (images, style sheets) before asking the API.
showKeyState();
route();
