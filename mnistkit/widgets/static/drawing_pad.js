// The drawing pad's front end (an anywidget ES module).
// Drawing happens here, in the browser: Pointer Events (mouse, pen, touch) paint on a canvas with no
// kernel round trip per move. When a stroke ends the canvas goes to Python as a PNG data URL
// (`image_data`); Python preprocesses it, asks the model and syncs back `preview` (the 28x28 the model
// saw), `digit`, `probabilities` (10 floats), `label` (for test digits), `status` and `error`.

const SIZE = 280;

function el(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function render({ model, el: root }) {
  root.classList.add("mnistkit-pad");
  const left = el("div", "mnistkit-pad-left", root);
  const canvas = el("canvas", "mnistkit-pad-canvas", left);
  canvas.width = SIZE;
  canvas.height = SIZE;
  canvas.setAttribute("aria-label", "drawing pad: draw a digit");
  const ctx = canvas.getContext("2d");
  const buttons = el("div", "mnistkit-pad-buttons", left);
  const clearBtn = el("button", "mnistkit-pad-clear", buttons);
  clearBtn.textContent = "Clear";
  const randomBtn = el("button", "mnistkit-pad-random", buttons);
  randomBtn.textContent = "Random test digit";

  const right = el("div", "mnistkit-pad-right", root);
  const seen = el("div", "mnistkit-pad-seen", right);
  const preview = el("img", "mnistkit-pad-preview", seen);
  preview.alt = "the 28x28 image the model saw";
  const answer = el("div", "mnistkit-pad-answer", seen);
  const bars = el("div", "mnistkit-pad-bars", right);
  const rows = [];
  for (let d = 0; d < 10; d++) {
    const row = el("div", "mnistkit-pad-bar-row", bars);
    row.dataset.digit = String(d);
    el("span", "mnistkit-pad-bar-label", row).textContent = String(d);
    const track = el("div", "mnistkit-pad-bar-track", row);
    const fill = el("div", "mnistkit-pad-bar", track);
    const value = el("span", "mnistkit-pad-bar-value", row);
    rows.push({ row, fill, value });
  }
  const status = el("div", "mnistkit-pad-status", right);
  const error = el("div", "mnistkit-pad-error", right);
  error.setAttribute("role", "alert");

  function blank() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, SIZE, SIZE);
  }
  blank();

  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  let drawing = false;
  let last = null;

  function pos(ev) {
    const r = canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) * SIZE) / r.width, ((ev.clientY - r.top) * SIZE) / r.height];
  }
  function segment(from, to, pressure) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = Number(model.get("stroke_width")) * (pressure > 0 && pressure !== 0.5 ? 0.5 + pressure : 1);
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
  }
  function down(ev) {
    if (ev.button !== undefined && ev.button > 0) return;
    ev.preventDefault();
    try {
      // Keep receiving this pointer's moves when it leaves the canvas mid-stroke.
      canvas.setPointerCapture(ev.pointerId);
    } catch (_err) {
      // A pointer the browser no longer tracks (e.g. a cancelled touch): draw without capture.
    }
    drawing = true;
    last = pos(ev);
    segment(last, last, ev.pressure);
  }
  function move(ev) {
    if (!drawing) return;
    ev.preventDefault();
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const e of events.length ? events : [ev]) {
      const p = pos(e);
      segment(last, p, e.pressure);
      last = p;
    }
  }
  function up(ev) {
    if (!drawing) return;
    drawing = false;
    last = null;
    try {
      if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
    } catch (_err) {
      // Already released by the browser.
    }
    model.set("image_data", canvas.toDataURL("image/png"));
    model.save_changes();
  }
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);

  clearBtn.addEventListener("click", () => {
    blank();
    model.set("image_data", "");
    model.save_changes();
    model.send({ event: "clear" });
  });
  randomBtn.addEventListener("click", () => model.send({ event: "random" }));

  // Python draws a test digit onto the canvas by syncing `canvas_image`.
  function drawCanvasImage() {
    const url = model.get("canvas_image");
    if (!url) return;
    const img = new Image();
    img.onload = () => {
      blank();
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(img, 0, 0, SIZE, SIZE);
    };
    img.src = url;
  }

  function update() {
    const probs = model.get("probabilities") || [];
    const digit = model.get("digit");
    const label = model.get("label");
    const url = model.get("preview");
    preview.style.visibility = url ? "visible" : "hidden";
    if (url) preview.src = url;
    answer.textContent = digit >= 0 ? String(digit) : "";
    answer.title = label >= 0 ? `true label: ${label}` : "";
    root.dataset.digit = String(digit);
    for (let d = 0; d < 10; d++) {
      const p = probs.length === 10 ? Number(probs[d]) : 0;
      rows[d].fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      rows[d].value.textContent = probs.length === 10 ? `${(p * 100).toFixed(1)}%` : "";
      rows[d].row.classList.toggle("mnistkit-pad-best", d === digit);
    }
    status.textContent = model.get("status") || "";
    error.textContent = model.get("error") || "";
    error.style.display = model.get("error") ? "block" : "none";
  }

  model.on("change:probabilities", update);
  model.on("change:digit", update);
  model.on("change:preview", update);
  model.on("change:status", update);
  model.on("change:error", update);
  model.on("change:label", update);
  model.on("change:canvas_image", drawCanvasImage);
  update();
  drawCanvasImage();

  return () => {
    canvas.removeEventListener("pointerdown", down);
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
  };
}

export default { render };
