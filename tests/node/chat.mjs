// The official openai Node SDK against the gateway's Chat Completions: several images with
// their detail, stream: true iteration, the chat.completions.stream helper, runTools and
// typed errors. Prints one JSON object the Python test asserts on.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.APERTURE_URL, apiKey: "unused", maxRetries: 0 });
const model = process.env.APERTURE_MODEL;
const [jpeg, png] = [process.env.APERTURE_JPEG, process.env.APERTURE_PNG];
const images = [
  { type: "text", text: "Compare these." },
  { type: "image_url", image_url: { url: jpeg, detail: "low" } },
  { type: "image_url", image_url: { url: png, detail: "high" } },
  { type: "image_url", image_url: { url: jpeg } },
];

const created = await client.chat.completions.create({
  model,
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content: images }],
  max_tokens: 300,
});

const chunks = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: images }],
  stream: true,
  stream_options: { include_usage: true },
});
let iterated = "";
let iteratedUsage = null;
let finish = null;
for await (const chunk of chunks) {
  for (const choice of chunk.choices) {
    iterated += choice.delta.content ?? "";
    finish = choice.finish_reason ?? finish;
  }
  if (chunk.usage) iteratedUsage = chunk.usage;
}

const helper = client.chat.completions.stream({
  model,
  messages: [{ role: "user", content: [{ type: "text", text: "Say hello." }, images[1]] }],
  stream_options: { include_usage: true },
});
let helperDeltas = "";
helper.on("content", (delta) => { helperDeltas += delta; });
const helperFinal = await helper.finalChatCompletion();

let toolArgs = null;
const runner = client.chat.completions.runTools({
  model,
  messages: [{ role: "user", content: "Describe the weather." }],
  tool_choice: { type: "function", function: { name: "describe" } },
  tools: [{
    type: "function",
    function: {
      name: "describe",
      description: "Describe something",
      parameters: { type: "object", properties: { text: { type: "string" } } },
      parse: JSON.parse,
      function: (args) => { toolArgs = args; return "sunny"; },
    },
  }],
});
const toolResult = await runner.finalFunctionToolCallResult();
const afterTool = await client.chat.completions.create({
  model,
  messages: [...runner.messages, { role: "user", content: "What did it say?" }],
});

// Structured output with the parse helper: response_format json_schema, parsed back.
const parsed = await client.chat.completions.parse({
  model,
  messages: [{ role: "user", content: "Count the images." }],
  response_format: {
    type: "json_schema",
    json_schema: {
      name: "count",
      strict: true,
      schema: {
        type: "object",
        properties: { images: { type: "integer" }, asked: { type: "string" } },
        required: ["images", "asked"],
        additionalProperties: false,
      },
    },
  },
});

const errors = {};
for (const [name, request] of Object.entries({
  unsupported: { model: "demo-text", messages: [{ role: "user", content: images }] },
  unknown_model: { model: "no-such-model", messages: [{ role: "user", content: "x" }] },
})) {
  try {
    await client.chat.completions.create(request);
    errors[name] = null;
  } catch (error) {
    errors[name] = {
      class: error.constructor.name,
      isBadRequest: error instanceof OpenAI.BadRequestError,
      isNotFound: error instanceof OpenAI.NotFoundError,
      status: error.status,
      code: error.code,
      param: error.param,
      type: error.type,
      message: error.error?.message,
    };
  }
}

console.log(JSON.stringify({
  created: {
    text: created.choices[0].message.content,
    finish: created.choices[0].finish_reason,
    usage: created.usage,
    model: created.model,
  },
  iterated: { text: iterated, finish, usage: iteratedUsage },
  helper: {
    text: helperFinal.choices[0].message.content,
    deltas: helperDeltas,
    usage: helperFinal.usage,
  },
  tools: {
    args: toolArgs,
    result: toolResult,
    roles: runner.messages.map((m) => m.role),
    after: afterTool.choices[0].message.content,
  },
  parsed: parsed.choices[0].message.parsed,
  errors,
}));
