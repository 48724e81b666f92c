// The clip page's 3D view: both hands' keypoints per frame, drawn with a perspective projection on a 2D canvas
// (no WebGL needed), played at the clip's frame rate; drag a view to turn it. The reconstruction, where there is
// one, is drawn with the same camera so the two can be compared.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("motion-data").textContent);
  const views = [["hands3d", data.original], ["recon3d", data.reconstruction]]
    .map(([id, track]) => ({ canvas: document.getElementById(id), track: track }))
    .filter((v) => v.canvas && v.track);
  if (!views.length) return;
  const frames = data.original.frames;
  const slider = document.getElementById("frame");
  const frameLabel = document.getElementById("frame-label");
  const play = document.getElementById("play");
  slider.max = String(frames - 1);

  // Scene centre and size from every point of the original: both views share one camera.
  let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  Object.values(data.original.hands).forEach((hand) => hand.forEach((frame) => {
    if (frame) frame.forEach((p) => p.forEach((v, i) => { lo[i] = Math.min(lo[i], v); hi[i] = Math.max(hi[i], v); }));
  }));
  if (!isFinite(lo[0])) { lo = [-0.1, -0.1, -0.1]; hi = [0.1, 0.1, 0.1]; }
  const centre = lo.map((v, i) => (v + hi[i]) / 2);
  const size = Math.max(0.15, ...hi.map((v, i) => v - lo[i]));
  let yaw = 0.5, pitch = 0.35, frame = 0, playing = true, last = null;

  function project(p, w, h) {
    // hiw's camera-like frames have y down and z forward: show y up
    let x = p[0] - centre[0], y = -(p[1] - centre[1]), z = p[2] - centre[2];
    const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    [x, z] = [cy * x + sy * z, -sy * x + cy * z];
    [y, z] = [cp * y - sp * z, sp * y + cp * z];
    const distance = 2.2 * size, f = 0.9 * Math.min(w, h) / size;
    const s = f * distance / (distance + z);
    return [w / 2 + s * x, h / 2 - s * y];
  }

  function draw(view) {
    const ctx = view.canvas.getContext("2d");
    const w = view.canvas.width, h = view.canvas.height;
    ctx.fillStyle = "#101418";
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#2c3540";
    ctx.lineWidth = 1;
    const axis = size / 3;
    [[axis, 0, 0], [0, -axis, 0], [0, 0, axis]].forEach((d) => {
      const a = project(centre, w, h), b = project(centre.map((v, i) => v + d[i]), w, h);
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
    });
    Object.entries(view.track.hands).forEach(([side, hand]) => {
      const points = hand[Math.min(frame, hand.length - 1)];
      if (!points) return;
      const xy = points.map((p) => project(p, w, h));
      ctx.strokeStyle = ctx.fillStyle = data.colours[side];
      ctx.lineWidth = 2.5;
      data.parents.forEach((parent, j) => {
        if (parent < 0) return;
        ctx.beginPath(); ctx.moveTo(xy[parent][0], xy[parent][1]); ctx.lineTo(xy[j][0], xy[j][1]); ctx.stroke();
      });
      xy.forEach((q) => { ctx.beginPath(); ctx.arc(q[0], q[1], 3, 0, 2 * Math.PI); ctx.fill(); });
    });
  }

  function show() {
    views.forEach(draw);
    slider.value = String(frame);
    frameLabel.textContent = "frame " + (frame + 1) + " / " + frames;
  }

  function tick(now) {
    if (playing) {
      if (last === null) last = now;
      const step = Math.floor((now - last) * data.original.fps / 1000);
      if (step > 0) { frame = (frame + step) % frames; last += step * 1000 / data.original.fps; show(); }
    }
    requestAnimationFrame(tick);
  }

  play.addEventListener("click", () => { playing = !playing; last = null; play.textContent = playing ? "pause" : "play"; });
  slider.addEventListener("input", () => { frame = Number(slider.value); playing = false; play.textContent = "play"; show(); });
  views.forEach((view) => {
    let from = null;
    view.canvas.addEventListener("pointerdown", (e) => { from = [e.clientX, e.clientY, yaw, pitch]; view.canvas.setPointerCapture(e.pointerId); });
    view.canvas.addEventListener("pointermove", (e) => {
      if (!from) return;
      yaw = from[2] + (e.clientX - from[0]) * 0.01;
      pitch = Math.max(-1.4, Math.min(1.4, from[3] + (e.clientY - from[1]) * 0.01));
      show();
    });
    view.canvas.addEventListener("pointerup", () => { from = null; });
  });
  show();
  requestAnimationFrame(tick);
})();
