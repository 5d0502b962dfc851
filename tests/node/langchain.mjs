// LangChain JS (@langchain/openai's ChatOpenAI with configuration.baseURL) against the gateway:
// invoke with an image, stream, bound tools, and the Responses API (useResponsesApi).
// Prints one JSON object the Python test asserts on.
import { ChatOpenAI } from "@langchain/openai";
import { HumanMessage, SystemMessage } from "@langchain/core/messages";

const make = (extra) => new ChatOpenAI({
  model: process.env.APERTURE_MODEL,
  apiKey: "unused",
  maxRetries: 0,
  configuration: { baseURL: process.env.APERTURE_URL },
  ...extra,
});
const question = [
  new SystemMessage("Be brief."),
  new HumanMessage({
    content: [
      { type: "text", text: "Describe this image." },
      { type: "image_url", image_url: { url: process.env.APERTURE_IMAGE, detail: "low" } },
    ],
  }),
];
const weather = {
  type: "function",
  function: {
    name: "weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { text: { type: "string" } } },
  },
};

const out = {};
for (const [api, model] of Object.entries({
  chat: make({}),
  responses: make({ useResponsesApi: true }),
})) {
  const answer = await model.invoke(question);
  let streamed = "";
  for await (const chunk of await model.stream("Say hello.")) streamed += chunk.text;
  // The next turn with the answer as LangChain keeps it (the Responses one carries its ids).
  const again = await model.invoke([...question, answer, new HumanMessage("And again?")]);
  const called = await model.bindTools([weather], { tool_choice: "weather" }).invoke("Weather?");
  out[api] = {
    text: answer.text,
    again: again.text,
    usage: answer.usage_metadata,
    streamed,
    calls: called.tool_calls.map((c) => [c.name, c.args]),
  };
}
console.log(JSON.stringify(out));
