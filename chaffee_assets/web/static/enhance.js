// Ask Dr Chaffee: enhancements only. Without this script every link still goes to YouTube at the
// right second and the answer is one button away.
(function () {
  "use strict";
  var VIDEO_ID = /^[A-Za-z0-9_-]{1,64}$/;

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function clock(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? h + ":" + two(m) + ":" + two(s) : two(m) + ":" + two(s);
  }

  // Play a moment in the embedded player (YouTube's privacy-enhanced domain), starting at its second.
  function play(link) {
    var id = link.getAttribute("data-video-id");
    var start = parseInt(link.getAttribute("data-start"), 10);
    if (!VIDEO_ID.test(id || "") || !(start >= 0)) return false;
    var title = link.getAttribute("data-title") || "";
    var player = document.getElementById("player");
    var frame = document.createElement("iframe");
    frame.src = "https://www.youtube-nocookie.com/embed/" + encodeURIComponent(id) +
      "?start=" + start + "&autoplay=1&rel=0";
    frame.title = "Video: " + title + " from " + clock(start);
    frame.allow = "autoplay; encrypted-media; picture-in-picture; fullscreen";
    frame.referrerPolicy = "strict-origin-when-cross-origin";
    frame.allowFullscreen = true;
    var holder = document.getElementById("player-frame");
    holder.replaceChildren(frame);
    document.getElementById("player-title").textContent = title + " · " + clock(start);
    document.getElementById("player-youtube").href = link.href;
    player.hidden = false;
    makeRoom(player);
    return true;
  }

  // The docked player covers the page's end (a third of a phone's screen): pad the page by its
  // height so "Show more moments" and the footer scroll clear of it.
  function makeRoom(player) {
    document.body.style.setProperty("--player-height", player.offsetHeight + "px");
    document.body.classList.add("player-open");
  }

  function closePlayer() {
    var player = document.getElementById("player");
    if (!player || player.hidden) return;
    player.hidden = true;
    document.body.classList.remove("player-open");
    document.getElementById("player-frame").replaceChildren();
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-video-id]");
    // A modified click (new tab, new window) keeps its meaning: open YouTube at the second.
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (play(link)) event.preventDefault();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closePlayer();
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((event.target.tagName || "")) || event.target.isContentEditable;
    if (event.key === "/" && !typing) {
      event.preventDefault();
      var box = document.getElementById("q");
      box.focus();
      box.select();
    }
  });

  // Fetch the answer after the page is shown, so the moments never wait for the model.
  function loadAnswer() {
    var box = document.getElementById("answer");
    if (!box || !box.hasAttribute("data-pending")) return;
    var form = box.querySelector(".answer-request");
    var waiting = box.querySelector(".answer-waiting");
    if (form) form.hidden = true;
    if (waiting) waiting.hidden = false;
    fetch(box.getAttribute("data-pending"), { headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html; // rendered by the server with every value escaped
        var fresh = holder.querySelector("#answer");
        if (fresh) box.replaceWith(fresh);
        else throw new Error("no answer in the response");
      })
      .catch(function () {
        if (waiting) waiting.hidden = true;
        if (form) form.hidden = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var closer = document.getElementById("player-close");
    if (closer) closer.addEventListener("click", closePlayer);
    window.addEventListener("resize", function () {
      var player = document.getElementById("player");
      if (player && !player.hidden) makeRoom(player);
    });
    loadAnswer();
  });
})();
