// The reference tus server for `python -m bench peer`: @tus/server with its FileStore,
// configured as documented and nothing more. Usage: node server.js PORT DIRECTORY
// It serves tus 1.0.0 under /api/v1/uploads (the path the station's uploader uses),
// prints "listening" once it accepts connections, and exits on SIGTERM.
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node server.js PORT DIRECTORY");
  process.exit(2);
}

const server = new Server({
  path: "/api/v1/uploads",
  relativeLocation: true,
  datastore: new FileStore({ directory }),
});

const http = server.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log("listening");
});
process.on("SIGTERM", () => {
  http.close(() => process.exit(0));
  http.closeAllConnections();
});
