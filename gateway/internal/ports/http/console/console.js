// The console page: /console/<vm>#token=<ticket> opens the VM's screen with that ticket; without
// one, the page asks the API for a ticket with the browser's session cookie.
import RFB from './novnc/core/rfb.js';

const status = document.getElementById('status');
const cad = document.getElementById('cad');
const vm = decodeURIComponent(location.pathname.split('/').pop());

async function socketURL() {
    const token = new URLSearchParams(location.hash.slice(1)).get('token');
    if (token) {
        // A ticket works once: keep it out of the address bar and the history.
        history.replaceState(null, '', location.pathname);
        const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
        return `${scheme}//${location.host}/vnc/${encodeURIComponent(vm)}?token=${encodeURIComponent(token)}`;
    }
    const answer = await fetch(`/api/vms/${encodeURIComponent(vm)}/console`, { credentials: 'same-origin' });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) {
        throw new Error(body.message || answer.statusText);
    }
    return body.ws_url;
}

try {
    const rfb = new RFB(document.getElementById('screen'), await socketURL(), { wsProtocols: ['binary'] });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => {
        status.textContent = `Connected to ${vm}`;
        cad.disabled = false;
        document.body.dataset.state = 'connected';
    });
    rfb.addEventListener('disconnect', (e) => {
        status.textContent = e.detail.clean ? 'Disconnected' : 'Connection lost';
        cad.disabled = true;
        document.body.dataset.state = 'disconnected';
    });
    cad.addEventListener('click', () => rfb.sendCtrlAltDel());
} catch (e) {
    status.textContent = `Cannot open the console: ${e.message}`;
    document.body.dataset.state = 'failed';
}
