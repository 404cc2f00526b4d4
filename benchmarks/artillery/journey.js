// Artillery's WebSocket engine only sends and matches single frames: this processor sends the message and
// awaits all five agent events of one journey (an async function: the engine waits for its promise).
const EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

async function journey(context, events) {
  const ws = context.ws;
  await new Promise((resolve, reject) => {
    const seen = new Set();
    const timer = setTimeout(() => reject(new Error("no agent_completed within 60 s")), 60000);
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (EVENTS.includes(frame.type)) {
        seen.add(frame.type);
        if (seen.size === EVENTS.length) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    const payload = { user_request: "What is 2 + 2?", thread_id: `artillery-${context.vars.$uuid}` };
    ws.send(JSON.stringify({ type: "start_agent", payload }));
  });
  events.emit("counter", "golden_path.journeys", 1);
  ws.close();
}

module.exports = { journey };
