'use strict';

// Worker function of the example service. Packaged by Code.fromAsset so the
// synthesized assembly holds a real Lambda file asset.
exports.handler = async (event) => {
  const records = (event && event.Records) || [];
  console.log(JSON.stringify({ received: records.length }));
  return { processed: records.length };
};
