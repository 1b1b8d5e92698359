// Live previews for the Create page. Frames come from the progress hub (/hubs/progress) over the MessagePack
// protocol as binary JPEG bytes, straight into an <img>, without passing through the Blazor circuit. The server sends a
// job's frames only to its owner's connections, and keeps only the newest frame for a slow connection.
//
// One connection per page; each watched job has an <img> element. Frame arguments:
// (jobId, step, totalSteps, similarity, jpegBytes, producedAtUnixMs).
//
// Every frame's timing is kept in window.promptFacesFrames (the newest 2000): when the server stamped it, when it
// arrived and when its image was decoded, in Unix milliseconds. The end-to-end tests read it to measure frame age and
// rate in a real browser; it holds no image data.

let connection = null;
let started = null;
const watched = new Map(); // jobId -> { img, url }
const frameLog = (window.promptFacesFrames = window.promptFacesFrames || []);
const frameLogLimit = 2000;

function nowUnixMs() {
    return performance.timeOrigin + performance.now();
}

// FNV-1a over the JPEG bytes: tells frames with different pictures apart in the log.
function hashBytes(bytes) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) {
        h ^= bytes[i];
        h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
}

function connect() {
    if (started) return started;
    connection = new signalR.HubConnectionBuilder()
        .withUrl("/hubs/progress")
        .withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol())
        .withAutomaticReconnect()
        .build();
    connection.on("frame", showFrame);
    // After a reconnect the server has forgotten this connection's subscriptions: subscribe again (it then sends the
    // latest frame at once).
    connection.onreconnected(() => {
        for (const jobId of watched.keys()) connection.invoke("Subscribe", jobId).catch(() => { });
    });
    started = connection.start();
    return started;
}

function showFrame(jobId, step, totalSteps, similarity, jpeg, producedAt) {
    const receivedAt = nowUnixMs();
    const entry = watched.get(jobId);
    if (!entry) return;
    const record = { jobId, step, producedAt: producedAt ?? null, receivedAt, decodedAt: null, bytes: jpeg ? jpeg.length : 0, hash: jpeg ? hashBytes(jpeg) : 0 };
    frameLog.push(record);
    if (frameLog.length > frameLogLimit) frameLog.splice(0, frameLog.length - frameLogLimit);
    if (jpeg && jpeg.length > 0) {
        const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
        const previous = entry.url;
        entry.url = url;
        entry.img.src = url;
        entry.img.decode().then(() => { record.decodedAt = nowUnixMs(); }, () => { });
        if (previous) URL.revokeObjectURL(previous);
    }
    entry.img.dataset.step = String(step);
    entry.img.dataset.totalSteps = String(totalSteps);
    entry.img.dataset.similarity = String(similarity);
}

/** Starts showing frames of a job in an <img>; resolves to the job's snapshot (null when it is not the user's). */
export async function watch(jobId, img) {
    watched.set(jobId, { img, url: null });
    await connect();
    return await connection.invoke("Subscribe", jobId);
}

/** Stops showing frames of a job. */
export async function unwatch(jobId) {
    const entry = watched.get(jobId);
    watched.delete(jobId);
    if (entry && entry.url) URL.revokeObjectURL(entry.url);
    if (connection && connection.state === signalR.HubConnectionState.Connected) {
        await connection.invoke("Unsubscribe", jobId).catch(() => { });
    }
}
