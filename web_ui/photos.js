// Photo slots: upload a photo (drag-and-drop or file picker), show it with the detected face
// boxes, and let the user pick one face when there are several.
import { api } from './api.js';

export async function uploadInto(slotEl, file) {
  const message = slotEl.querySelector('.slot-message');
  message.className = 'slot-message';
  message.textContent = `Uploading ${file.name}…`;
  const form = new FormData();
  form.append('photo', file);
  try {
    const upload = await api('POST', '/web/uploads', form);
    return { upload, faceIndex: 0 };
  } catch (e) {
    message.textContent = e.message;
    message.className = 'slot-message error';
    return null;
  }
}

export function renderSlot(slotEl, value, onPick) {
  const preview = slotEl.querySelector('.preview');
  const img = preview.querySelector('img');
  const boxes = preview.querySelector('.boxes');
  const message = slotEl.querySelector('.slot-message');
  const hint = slotEl.querySelector('.drop-hint');
  boxes.replaceChildren();
  if (!value) {
    preview.hidden = true;
    img.removeAttribute('src');
    message.textContent = '';
    hint.hidden = false;
    return;
  }
  preview.hidden = false;
  hint.hidden = true;
  if (value.face) {
    img.src = `/web/files/${value.face.image}`;
    img.alt = 'A generated face chosen as input';
    message.className = 'slot-message';
    message.textContent = 'A generated face (from the results).';
    return;
  }
  const { upload } = value;
  img.src = `/web/uploads/${upload.upload_id}/photo.png`;
  img.alt = 'The uploaded photo';
  const faces = upload.faces || [];
  faces.forEach((face, i) => {
    const [l, t, r, b] = face.box;
    const box = document.createElement(faces.length > 1 ? 'button' : 'div');
    box.className = 'face-box';
    box.style.left = `${(100 * l) / upload.width}%`;
    box.style.top = `${(100 * t) / upload.height}%`;
    box.style.width = `${(100 * (r - l)) / upload.width}%`;
    box.style.height = `${(100 * (b - t)) / upload.height}%`;
    if (faces.length > 1) {
      box.type = 'button';
      box.textContent = String(i + 1);
      box.setAttribute('aria-label', `Use face ${i + 1}`);
      box.setAttribute('aria-pressed', String(i === (value.faceIndex || 0)));
      box.addEventListener('click', () => {
        value.faceIndex = i;
        boxes.querySelectorAll('.face-box').forEach((el, j) => {
          el.setAttribute('aria-pressed', String(j === i));
          el.classList.toggle('picked', j === i);
        });
        message.textContent = `${faces.length} faces found: face ${i + 1} is used.`;
        onPick(i);
      });
    }
    if (i === (value.faceIndex || 0)) box.classList.add('picked');
    boxes.append(box);
  });
  message.className = 'slot-message';
  message.textContent = faces.length > 1
    ? `${faces.length} faces found: face ${(value.faceIndex || 0) + 1} is used. Click a box to pick another.`
    : 'One face found.';
  if (upload.warnings && upload.warnings.length) message.textContent += ` ${upload.warnings.join(' ')}`;
}
