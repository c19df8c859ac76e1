// uWebSockets.js echo server (the uws-pack repack of uNetworking's prebuilt binaries): the
// reference the field knows as the fastest, for `scenarios/uws.toml`.
//
//   node scripts/foreign/uws-echo.mjs PORT
//
// Echoes every message with its frame type, no compression, 16 MiB messages. Listens on
// 127.0.0.1 only. Exits on SIGTERM/SIGINT after closing the listen socket.
import { App, us_listen_socket_close } from 'uws-pack';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node uws-echo.mjs PORT');
    process.exit(2);
}

let listenSocket = null;
App()
    .ws('/*', {
        compression: 0,
        maxPayloadLength: 16 * 1024 * 1024,
        idleTimeout: 0,
        message: (ws, message, isBinary) => {
            ws.send(message, isBinary);
        },
    })
    .listen('127.0.0.1', port, (socket) => {
        if (!socket) {
            console.error(`uws-echo: cannot listen on 127.0.0.1:${port}`);
            process.exit(1);
        }
        listenSocket = socket;
        console.error(`uws-echo: listening on 127.0.0.1:${port}`);
    });

for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
        if (listenSocket) us_listen_socket_close(listenSocket);
        process.exit(0);
    });
}
