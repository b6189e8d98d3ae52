'use strict';

// Negative fixture: a stack that carries plaintext secrets in Lambda and
// CodeBuild environment variables, next to values that are safe (references,
// parameter names, dynamic references, SECRETS_MANAGER / PARAMETER_STORE
// variables). The secret values are the well-known documentation examples,
// not real credentials.
// Synthesized by ../synth.sh into ./cdk.out, which the tests use as a fixture.

const cdk = require('aws-cdk-lib');
const dynamodb = require('aws-cdk-lib/aws-dynamodb');
const lambda = require('aws-cdk-lib/aws-lambda');
const codebuild = require('aws-cdk-lib/aws-codebuild');

class SecretsStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    });

    const leaky = new lambda.Function(this, 'LeakyFunction', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({ ok: true });'),
      environment: {
        // Plaintext secrets (must be reported).
        DB_PASSWORD: 'hunter2',
        // Safe values (must not be reported).
        TABLE_NAME: table.tableName,
        API_TOKEN_PARAM: '/example/app/api-token',
        SERVICE_TOKEN: cdk.SecretValue.secretsManager('prod/token').unsafeUnwrap(),
      },
    });
    // aws-cdk-lib refuses the reserved AWS_* names in `environment`, so these
    // two are written through the L1 escape hatch, as a user working around
    // that check would do.
    const cfnLeaky = leaky.node.defaultChild;
    cfnLeaky.addPropertyOverride(
      'Environment.Variables.AWS_ACCESS_KEY_ID',
      'AKIAIOSFODNN7EXAMPLE',
    );
    cfnLeaky.addPropertyOverride(
      'Environment.Variables.AWS_SECRET_ACCESS_KEY',
      'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    );

    new codebuild.Project(this, 'LeakyProject', {
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['npm ci', 'npm publish'] } },
      }),
      environmentVariables: {
        // Plaintext secret (must be reported).
        GITHUB_TOKEN: {
          type: codebuild.BuildEnvironmentVariableType.PLAINTEXT,
          value: 'ghp_exampleexampleexampleexample0000',
        },
        // Resolved by CodeBuild at build time (must not be reported).
        NPM_TOKEN: {
          type: codebuild.BuildEnvironmentVariableType.SECRETS_MANAGER,
          value: 'prod/npm-token',
        },
        DB_PASSWORD: {
          type: codebuild.BuildEnvironmentVariableType.PARAMETER_STORE,
          value: '/prod/db/password',
        },
        // Harmless plain value.
        STAGE: { value: 'dev' },
      },
    });
  }
}

const app = new cdk.App({
  // Creation stack traces would record absolute source paths of the machine
  // that ran the synthesis; leave them out so the assembly is reproducible.
  context: { 'aws:cdk:disable-creation-stack-traces': true },
});
new SecretsStack(app, 'SecretsStack', {
  env: { account: '222222222222', region: 'eu-west-1' },
});
app.synth();
