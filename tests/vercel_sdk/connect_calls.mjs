// The eleven connect* calls of @vercel/sdk 1.28.35 against a Connect server, unchanged but for
// serverURL and bearerToken. Started by tests/api/test_vercel_sdk.py with CONNECT_URL,
// CONNECT_TOKEN (a team API token), PROJECT_ID and TEAM_ID; prints one JSON line of what each
// call returned and exits non-zero on the first call that throws.
import { Vercel } from "@vercel/sdk";
import { ConnectError } from "@vercel/sdk/models/connecterror.js";

const vercel = new Vercel({
  serverURL: process.env.CONNECT_URL,
  bearerToken: process.env.CONNECT_TOKEN,
});
const projectId = process.env.PROJECT_ID;
const teamId = process.env.TEAM_ID;
const uid = "oauth/sdk-app"; // the SDK percent-encodes it: oauth%2Fsdk-app
const seen = {};

async function step(name, call) {
  try {
    seen[name] = (await call()) ?? null;
  } catch (error) {
    const detail =
      error instanceof ConnectError
        ? { status: error.statusCode, code: error.error?.code, message: error.error?.message }
        : { name: error?.name, message: String(error?.message ?? error).slice(0, 2000) };
    console.log(JSON.stringify({ failed: name, detail, seen }));
    process.exit(1);
  }
}

await step("createConnector", () =>
  vercel.connect.createConnector({
    teamId,
    connectCreateConnectorRequest: {
      type: "oauth",
      uid,
      name: "SDK app",
      data: {
        clientId: "sdk-client",
        clientSecret: "sdk-secret-1",
        serverConfig: {
          issuer: "https://auth.example.com",
          authorizationEndpoint: "https://auth.example.com/authorize",
          tokenEndpoint: "https://auth.example.com/token",
        },
      },
      backgroundColor: "#112233",
    },
  }),
);
await step("listConnectors", () => vercel.connect.listConnectors({ teamId, limit: 10, search: "sdk" }));
await step("getConnector", () => vercel.connect.getConnector({ connector: uid }));
await step("updateConnector", () =>
  vercel.connect.updateConnector({
    connector: uid,
    connectUpdateConnectorRequest: { name: "SDK app renamed", accentColor: "#445566" },
  }),
);
await step("upsertConnectorProjectConnection", () =>
  vercel.connect.upsertConnectorProjectConnection({
    connector: uid,
    projectId,
    connectUpsertProjectConnectionRequest: { environments: ["production", "preview"] },
  }),
);
await step("getConnectorProjectConnection", () =>
  vercel.connect.getConnectorProjectConnection({ connector: uid, projectId }),
);
await step("listConnectorProjectConnections", () =>
  vercel.connect.listConnectorProjectConnections({ connector: uid, limit: 5 }),
);
await step("listProjectConnectorConnections", () =>
  vercel.connect.listProjectConnectorConnections({ projectId, limit: 5 }),
);
await step("replaceConnectorTriggerDestinations", () =>
  vercel.connect.replaceConnectorTriggerDestinations({
    connector: seen.createConnector.id,
    connectReplaceTriggerDestinationsRequest: {
      destinations: [{ projectId, path: "/webhooks" }],
    },
  }),
);
await step("deleteConnectorProjectConnection", () =>
  vercel.connect.deleteConnectorProjectConnection({ connector: uid, projectId }),
);
await step("deleteConnector", () => vercel.connect.deleteConnector({ connector: uid }));

// And one error, as the SDK reads it: a ConnectError with the envelope's code.
let notFound = null;
try {
  await vercel.connect.getConnector({ connector: uid });
} catch (error) {
  notFound = error instanceof ConnectError ? { status: error.statusCode, code: error.error?.code } : String(error);
}
console.log(JSON.stringify({ ok: true, seen, notFound }));
