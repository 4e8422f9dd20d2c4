// A live checklist for the password rules on the reset page. The rules are
// always written out as text; this only tells the person, as they type,
// which of the rules a browser can check are met (length, and that the two
// passwords match). The server checks everything again.

const MET = 'app-requirement--met';

function setStatus(item, met) {
  item.classList.toggle(MET, met);
  let status = item.querySelector('.app-requirement__status');
  if (!status) {
    status = document.createElement('span');
    status.className = 'app-requirement__status';
    item.append(' ', status);
  }
  status.textContent = met ? '(done)' : '';
}

export function initPasswordChecklist(scope) {
  const list = scope.querySelector('#password-requirements');
  const password = scope.querySelector('#password');
  const confirm = scope.querySelector('#confirm-password');
  const status = scope.querySelector('#password-status');
  if (!list || !password || !confirm || !status) return;

  const min = Number(list.dataset.minLength || '12');
  const lengthItem = list.querySelector('[data-rule="length"]');
  const matchItem = document.createElement('li');
  matchItem.dataset.rule = 'match';
  matchItem.textContent = 'match in both password boxes';
  list.append(matchItem);

  const update = () => {
    // Count code points, as the server does, not UTF-16 units.
    const length = [...password.value.normalize('NFC')].length;
    const lengthMet = length >= min;
    const matchMet = password.value.length > 0 && password.value === confirm.value;
    if (lengthItem) setStatus(lengthItem, lengthMet);
    setStatus(matchItem, matchMet);
    status.textContent = `${length} of at least ${min} characters${lengthMet ? '.' : ','} ${
      matchMet ? 'The passwords match.' : 'The passwords do not match yet.'
    }`;
  };
  password.addEventListener('input', update);
  confirm.addEventListener('input', update);
}
